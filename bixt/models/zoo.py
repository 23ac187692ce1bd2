"""Every published BiXT image model, under its official name (SPEC 1.8).

Naming: ``bixt_{ti|ed256|ed256LS}_l{latents}[_d13]_{p16|p16s8|p16s4}[_ft384]``; ``ti`` = width 192 / 6 heads,
``ed256`` = width 256 / 8 heads (head width is 32 throughout), ``LS`` = LayerScale 1e-5, ``d13`` = 13 layers (the
dense-task backbones), ``p16s8`` = 16x16 patches at stride 8, ``ft384`` = fine-tuned at 384x384, ``cnv_..._p{16,8,4}``
= XCiT conv stem with that stride.

Three ft384 models have published weights but no constructor in the official code; they are registered here too:
``bixt_ti_l64_d13_p16_ft384``, ``bixt_ti_l64_d13_p16s8_ft384`` and ``bixt_ed256LS_l64_p16s8_ft384``.
"""

from __future__ import annotations

from bixt.models.bixt import BiXT, BiXTConfig
from bixt.models.registry import register_model

_TI = dict(embed_dim=192, num_heads=6)
_ED256 = dict(embed_dim=256, num_heads=8)
_LS = dict(layer_scale_init=1e-5)
_TOKENIZER = {"p16": "patch16", "p16s8": "patch16_s8", "p16s4": "patch16_s4"}
_CONV = {"p16": "conv16", "p8": "conv8", "p4": "conv4"}


def _register(name: str, **config: object) -> None:
    register_model(name, BiXT, BiXTConfig(**config))


for _stem in ("p16", "p16s8", "p16s4"):
    _register(f"bixt_ti_l64_{_stem}", tokenizer=_TOKENIZER[_stem], **_TI)
    _register(f"bixt_ti_l64_d13_{_stem}", tokenizer=_TOKENIZER[_stem], depth=13, **_TI)
    _register(f"bixt_ti_l64_{_stem}_ft384", tokenizer=_TOKENIZER[_stem], img_size=384, **_TI)

for _stem in ("p16", "p16s8"):
    _register(f"bixt_ti_l32_{_stem}", tokenizer=_TOKENIZER[_stem], num_latents=32, **_TI)
    _register(f"bixt_ti_l128_{_stem}", tokenizer=_TOKENIZER[_stem], num_latents=128, **_TI)
    _register(f"bixt_ed256_l64_{_stem}", tokenizer=_TOKENIZER[_stem], **_ED256)
    _register(f"bixt_ti_l64_d13_{_stem}_ft384", tokenizer=_TOKENIZER[_stem], depth=13, img_size=384, **_TI)

_register("bixt_ed256LS_l64_p16s8", tokenizer="patch16_s8", **_ED256, **_LS)
_register("bixt_ed256_l64_p16s8_ft384", tokenizer="patch16_s8", img_size=384, **_ED256)
_register("bixt_ed256LS_l64_p16s8_ft384", tokenizer="patch16_s8", img_size=384, **_ED256, **_LS)

_register("bixt_ti_cnv_l64_p16", tokenizer=_CONV["p16"], **_TI)
for _stem in ("p16", "p8", "p4"):
    _register(f"bixt_ti_cnv_l64_d13_{_stem}", tokenizer=_CONV[_stem], depth=13, **_TI)
