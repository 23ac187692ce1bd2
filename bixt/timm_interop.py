"""Optional: the published BiXT image classifiers as timm models (``timm.create_model("bixt_ti_l64_p16")``).

timm is not a dependency of the package. ``import bixt`` does not import it either: it registers the models the moment
timm is imported, or at once when timm already is (`bixt._lazy.after_import`). Only the image classifiers of the model
zoo are registered, under their ``bixt_*`` names, each with a pretrained config (input size, preprocessing, classifier
and first-conv names, licence, paper, the published weights' file name), so that timm's data config, its layer-wise
learning-rate decay, ``features_only=True`` (per-layer token maps), and its scripts work as for its own models. timm's
``device`` / ``dtype`` factory arguments are honoured. The authors' checkpoints load through timm's local-file route,
``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)``, read by `bixt.load_official` (no arbitrary unpickling);
bixt downloads nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
from torch import nn

from bixt.data.images import IMAGENET_MEAN, IMAGENET_STD
from bixt.models.bixt import BiXT, BiXTConfig
from bixt.models.registry import create_model, get_entry, list_models

# Models whose ImageNet-1k weights the authors published (SPEC 2.2's tables), one figshare zip each (SPEC 5, linked from
# their MODEL_WEIGHTS.md, holding timm's model_best.pth.tar). The zips are named after the model as in SPEC 5's example
# (bixt_ti_l64_p16.zip); the conv models are called bixt_conv_* there (SPEC 6.4). Names not checked against the files.
PUBLISHED_WEIGHTS: dict[str, str] = {
    "bixt_ti_l64_p16": "bixt_ti_l64_p16.zip",
    "bixt_ti_l64_p16s8": "bixt_ti_l64_p16s8.zip",
    "bixt_ti_l64_p16s4": "bixt_ti_l64_p16s4.zip",
    "bixt_ti_l64_p16_ft384": "bixt_ti_l64_p16_ft384.zip",
    "bixt_ti_l64_p16s8_ft384": "bixt_ti_l64_p16s8_ft384.zip",
    "bixt_ti_l64_p16s4_ft384": "bixt_ti_l64_p16s4_ft384.zip",
    "bixt_ti_l64_d13_p16": "bixt_ti_l64_d13_p16.zip",
    "bixt_ti_l64_d13_p16s8": "bixt_ti_l64_d13_p16s8.zip",
    "bixt_ti_l64_d13_p16s4": "bixt_ti_l64_d13_p16s4.zip",
    "bixt_ti_l64_d13_p16_ft384": "bixt_ti_l64_d13_p16_ft384.zip",
    "bixt_ti_l64_d13_p16s8_ft384": "bixt_ti_l64_d13_p16s8_ft384.zip",
    "bixt_ed256_l64_p16": "bixt_ed256_l64_p16.zip",
    "bixt_ed256LS_l64_p16s8": "bixt_ed256LS_l64_p16s8.zip",
    "bixt_ed256LS_l64_p16s8_ft384": "bixt_ed256LS_l64_p16s8_ft384.zip",
    "bixt_ti_cnv_l64_p16": "bixt_conv_ti_l64_p16.zip",
    "bixt_ti_cnv_l64_d13_p16": "bixt_conv_ti_l64_d13_p16.zip",
    "bixt_ti_cnv_l64_d13_p8": "bixt_conv_ti_l64_d13_p8.zip",
}

PAPER_NAME = "Perceiving Longer Sequences With Bi-Directional Cross-Attention Transformers"
PAPER_ID = "arXiv:2402.12138"
ORIGIN_URL = "https://github.com/mrkshllr/BiXT"
LICENSE = "apache-2.0"  # the authors' repository (code and MODEL_WEIGHTS.md)

_FILE_ROUTE = (
    "pass pretrained_cfg_overlay=dict(file=PATH) (train.py: --pretrained-path PATH) with PATH a local checkpoint: "
    "the authors' .pth.tar, or one in bixt's layout such as timm's train.py writes"
)


def timm_model_names() -> list[str]:
    """The bixt models registered in timm: the model zoo's image classifiers."""
    return [name for name in list_models("bixt_*") if get_entry(name).model_class is BiXT]


def first_conv(config: BiXTConfig) -> str:
    """Name of the convolution that reads the image (timm's ``first_conv``, adapted when in_chans differs)."""
    if config.tokenizer.startswith("patch"):
        return "tokenizer.patch_embed.proj"
    return "tokenizer.patch_embed.stages.0.conv"


def default_out_indices(one_sided_last: bool) -> tuple[int, ...]:
    """features_only's default taps, counted from the end: the last three layers that update the tokens (a one-sided
    last layer does not)."""
    return (-4, -3, -2) if one_sided_last else (-3, -2, -1)


def pretrained_cfg(name: str) -> dict[str, Any]:
    """timm's pretrained config for `name`: what its data pipeline, optimiser factory and loaders read."""
    config = get_entry(name).config
    weights = PUBLISHED_WEIGHTS.get(name)
    return dict(
        input_size=(config.in_chans, config.img_size, config.img_size),
        interpolation="bicubic",
        crop_pct=0.875,  # 224 -> resize 256, crop 224; 384 -> resize 438, crop 384 (SPEC evaluation)
        crop_mode="center",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_classes=config.num_classes,
        first_conv=first_conv(config),
        classifier="head.fc",
        custom_load=True,  # timm's file route hands the path to BiXT.load_pretrained (= bixt.load_official)
        license=LICENSE,
        paper_name=PAPER_NAME,
        paper_ids=PAPER_ID,
        origin_url=ORIGIN_URL,
        notes=(
            f"official weights: {weights} (figshare, linked from the authors' MODEL_WEIGHTS.md); {_FILE_ROUTE}"
            if weights
            else "no official weights published",
        ),
    )


def weight_file(*cfgs: Any) -> str | None:
    """The local weight file named by timm's pretrained config arguments (dicts or PretrainedCfg), if any; later
    ones override earlier ones, as timm's overlay overrides the config."""
    found = None
    for cfg in cfgs:
        file = cfg.get("file") if isinstance(cfg, dict) else getattr(cfg, "file", None)
        found = file or found
    return found


def _construct(
    name: str, device: torch.device | str | None = None, dtype: torch.dtype | None = None, **overrides: Any
) -> nn.Module:
    """The bixt model, built on `device` and cast to `dtype` (timm's factory arguments)."""
    with torch.device(device) if device is not None else nullcontext():
        model = create_model(name, **overrides)
    return model if dtype is None else model.to(dtype=dtype)


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    config = get_entry(name).config

    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from timm.models import build_model_with_cfg

        if pretrained:
            if weight_file(kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay")) is None:
                raise ValueError(f"bixt downloads no weights; to load a checkpoint into {name!r}, {_FILE_ROUTE}")
            # always BiXT.load_pretrained: timm's generic loader would skip every official key with a mere warning,
            # and timm resets custom_load whenever a new weight file is named
            kwargs["pretrained_cfg_overlay"] = {**(kwargs.get("pretrained_cfg_overlay") or {}), "custom_load": True}
        return build_model_with_cfg(
            partial(_construct, name),
            name,
            pretrained,
            feature_cfg=dict(
                feature_cls="getter",
                out_indices=default_out_indices(kwargs.get("one_sided_last", config.one_sided_last)),
            ),
            **kwargs,
        )

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = f"timm entrypoint of bixt's {name!r}."
    return build


# timm reads a module's ``default_cfgs`` when registering one of its entrypoints
default_cfgs: dict[str, dict[str, Any]] = {}


def register_in_timm() -> list[str]:
    """Register every bixt image classifier that timm does not know yet; returns the names registered."""
    from timm.models import is_model, register_model

    added = []
    module = sys.modules[__name__]
    for name in timm_model_names():
        if is_model(name):
            continue
        default_cfgs[name] = pretrained_cfg(name)
        entrypoint = _entrypoint(name)
        setattr(module, name, entrypoint)  # timm lists entrypoints in the module's __all__: make them real
        register_model(entrypoint)
        added.append(name)
    return added
