"""BiXT for semantic segmentation (ADE20K-style, SPEC 2.4).

image -> ImageTokenizer -> tokens -> BiXTEncoder (all layers bi-directional) -> token maps -> decoder -> pixel logits

The backbone is a d13 BiXT with its one-sided last layer dropped (SPEC 1.3): the 12 remaining layers all update the
tokens, so every token update is trained. Its ``tokenizer.*`` and ``encoder.*`` weights have the same names as
those of the d13 classifier: `Segmenter.load_backbone` takes a pretrained d13 state dict (its head and 13th layer
are left out). Decoders: ``linear`` (a linear predictor per token, upsampled) or ``fpn`` (a small Semantic-FPN-style
decoder over four evenly spaced layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from bixt.heads_dense import FPNSegmentationHead, LinearSegmentationHead
from bixt.layers.init import init_weights_jax
from bixt.models.config_checks import check_positive
from bixt.models.encoder import BiXTEncoder, Intermediates
from bixt.models.encoder_config import EncoderConfig
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin, load_backbone_weights
from bixt.models.surface import EncoderModelMixin
from bixt.tokenizers.image import ImageTokenizer, ImageTokenizerKind, tokenizer_stride

SegDecoderKind = Literal["linear", "fpn"]
SEG_DECODERS: tuple[str, ...] = get_args(SegDecoderKind)
FPN_LEVELS = 4


@dataclass
class SegmentationConfig(EncoderConfig):
    """Defaults: BiXT-Ti/8 d13 backbone without its last layer (12 bi-directional layers), 150 classes, linear."""

    img_size: int = 224  # nominal resolution (example input, cost counting); any multiple of the stride runs
    in_chans: int = 3
    num_classes: int = 150
    depth: int = 12  # bi-directional layers (a d13 backbone minus its one-sided last layer)
    num_latents: int = 64
    tokenizer: ImageTokenizerKind = "patch16_s8"
    decoder: SegDecoderKind = "linear"
    fpn_dim: int = 64  # fpn only
    layer_scale_init: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(num_classes=self.num_classes, fpn_dim=self.fpn_dim)
        if self.decoder not in SEG_DECODERS:
            raise ValueError(f"decoder must be one of {SEG_DECODERS}, got {self.decoder!r}")
        if self.decoder == "fpn" and self.depth < FPN_LEVELS:
            raise ValueError(f"the fpn decoder reads {FPN_LEVELS} layers; depth must be >= {FPN_LEVELS}")
        if self.img_size % tokenizer_stride(self.tokenizer):
            raise ValueError(f"img_size ({self.img_size}) must be a multiple of the tokenizer stride")

    @property
    def decoder_layers(self) -> list[int]:
        """Indices of the layers whose tokens the decoder reads: the last (linear) or four evenly spaced (fpn)."""
        if self.decoder == "linear":
            return [self.depth - 1]
        return [(k + 1) * self.depth // FPN_LEVELS - 1 for k in range(FPN_LEVELS)]


@dataclass
class SegmentationFeatures:
    """latents: (b, m, d); tokens: (b, h*w, d) after the last layer; token_maps: (b, h*w, d) per decoder layer,
    shallow to deep; grid (h, w); image (H, W)."""

    latents: torch.Tensor
    tokens: torch.Tensor
    token_maps: list[torch.Tensor]
    grid: tuple[int, int]
    image_size: tuple[int, int]


@register_architecture
class Segmenter(EncoderModelMixin, PretrainedMixin, nn.Module):
    """forward(x): (b, in_chans, H, W), H and W multiples of the stride -> logits (b, num_classes, H, W)."""

    config_class = SegmentationConfig
    inputs = ("images",)  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: SegmentationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SegmentationConfig()
        self.tokenizer = ImageTokenizer(kind=config.tokenizer, in_chans=config.in_chans, dim=config.embed_dim)
        self.encoder = BiXTEncoder(num_latents=config.num_latents, one_sided_last=False, **config.encoder_args())
        if config.decoder == "linear":
            self.head = LinearSegmentationHead(config.embed_dim, config.num_classes)
        else:
            self.head = FPNSegmentationHead(config.embed_dim, config.num_classes, fpn_dim=config.fpn_dim)
        init_weights_jax(self)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        c = self.config
        return torch.randn(batch_size, c.in_chans, c.img_size, c.img_size, device=self.encoder.latents.device)

    def forward_features(self, x: torch.Tensor, *, intermediates: Intermediates | None = None) -> SegmentationFeatures:
        tokens = self.tokenizer(x).tokens  # validates x
        stride = self.tokenizer.stride
        grid = (x.shape[-2] // stride, x.shape[-1] // stride)
        if self.config.decoder == "linear":
            out = self.encoder(tokens, intermediates=intermediates)
            maps = [out.tokens]
        else:
            # the FPN decoder reads several layers' tokens: collect them even when the caller does not ask
            collected = intermediates if intermediates is not None else Intermediates()
            out = self.encoder(tokens, intermediates=collected)
            maps = [collected.tokens[i] for i in self.config.decoder_layers]
        return SegmentationFeatures(
            latents=out.latents, tokens=out.tokens, token_maps=maps, grid=grid, image_size=tuple(x.shape[-2:])
        )

    def forward_head(self, features: SegmentationFeatures, pre_logits: bool = False) -> torch.Tensor:
        """Pixel logits (b, num_classes, H, W), or with ``pre_logits=True`` the feature map the decoder's classifier
        reads (see the head)."""
        return self.head(
            features.token_maps, features.latents, features.grid, features.image_size, pre_logits=pre_logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def load_backbone(self, state_dict: Mapping[str, torch.Tensor], *, allow_missing: bool = False) -> list[str]:
        """Load tokenizer and encoder weights from a BiXT image classifier's state dict (e.g. a d13 model).

        Every backbone weight of this model must be in `state_dict` (unless `allow_missing`: see
        `load_backbone_weights`); returns the keys that were not used (the classifier's head, and its layers beyond
        this model's depth).
        """
        return list(load_backbone_weights(self, dict(state_dict), allow_missing=allow_missing).unused)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer in the backward pass (linear decoder only: the FPN decoder reads the intermediate
        layers, which the encoder does not recompute)."""
        if enable and self.config.decoder != "linear":
            raise ValueError("gradient checkpointing is only available with the linear decoder")
        self.encoder.grad_checkpointing = enable
