"""Registered models beyond the published image classifiers: the paper's other tasks and its baselines.

Image baselines (ImageNet, Table 1a / 2), all Ti-sized (width 192, head width 32 for the latent models):
- ``vit_ti_p16``: full Transformer, DeiT-Ti (5,717,416 parameters, 1.26 GFLOPs at 224).
- ``sequential_ti_l64_p16``: sequential cross-attention, d12 (1.81 GFLOPs / 9.24M activations at 224).
- ``perceiver_ti_l64_p16_sa5_d8``: Perceiver-style iterative attention, 8 cross-attentions each followed by 5 latent
  self-attention blocks; ``_share_all`` shares every cross-attention (dagger), ``_share_but_first`` all but the
  first (double dagger).

Dense image models (ADE20K-style, 150 classes): ``bixt_ti_l64_d13_{p16,p16s8}_seg_{linear,fpn}``, the d13 backbone
minus its one-sided last layer.

Sequences (Long Range Arena; ids 0 = padding): ``{bixt,transformer}_lra_{listops,text,retrieval}``, BiXT and a full
Transformer of the same width (64) and depth (4). ListOps: vocabulary of 32 ids, length <= 2048, 10 classes; text:
bytes + 1 (257 ids), length <= 4096, 2 classes; retrieval: two such byte sequences, 2 classes.

Point clouds: ``bixt_points_cls`` (grouped tokens, 40 classes), ``bixt_points_cls_naive`` (one token per point) and
``bixt_points_partseg`` (per-point, 50 parts, 16 object categories).
"""

from __future__ import annotations

from bixt.models.baselines import PerceiverConfig, PerceiverNet, SequentialCrossAttentionNet
from bixt.models.bixt import BiXTConfig
from bixt.models.points import PartSegConfig, PartSegmenter, PointClassifier, PointClassifierConfig
from bixt.models.registry import register_model
from bixt.models.segmentation import SegmentationConfig, Segmenter
from bixt.models.sequence import RetrievalConfig, SequenceClassifier, SequenceConfig, SequenceRetrieval
from bixt.models.transformer import VisionTransformer, ViTConfig

_TI = dict(embed_dim=192, num_heads=6)

register_model("vit_ti_p16", VisionTransformer, ViTConfig())
register_model("sequential_ti_l64_p16", SequentialCrossAttentionNet, BiXTConfig(**_TI))
for _suffix, _share in (("", "none"), ("_share_all", "all"), ("_share_but_first", "all_but_first")):
    register_model(
        f"perceiver_ti_l64_p16_sa5_d8{_suffix}",
        PerceiverNet,
        PerceiverConfig(depth=8, self_per_cross=5, share_cross=_share, **_TI),
    )

for _stem, _tokenizer in (("p16", "patch16"), ("p16s8", "patch16_s8")):
    for _decoder in ("linear", "fpn"):
        register_model(
            f"bixt_ti_l64_d13_{_stem}_seg_{_decoder}",
            Segmenter,
            SegmentationConfig(tokenizer=_tokenizer, decoder=_decoder, **_TI),
        )

_LRA = {
    "listops": dict(vocab_size=32, max_length=2048, num_classes=10),
    "text": dict(vocab_size=257, max_length=4096, num_classes=2),
}
for _encoder in ("bixt", "transformer"):
    for _task, _fields in _LRA.items():
        register_model(f"{_encoder}_lra_{_task}", SequenceClassifier, SequenceConfig(encoder=_encoder, **_fields))
    register_model(f"{_encoder}_lra_retrieval", SequenceRetrieval, RetrievalConfig(encoder=_encoder))

register_model("bixt_points_cls", PointClassifier, PointClassifierConfig())
register_model("bixt_points_cls_naive", PointClassifier, PointClassifierConfig(tokenizer="naive"))
register_model("bixt_points_partseg", PartSegmenter, PartSegConfig())
