"""Optimizers: AdamW (torch) and LAMB with trust-ratio clipping (pytorch-optimizer), with weight-decay groups."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from bixt.engine.config import OptimSection


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and the parameters exempt from decay.

    Exempt (as in the paper's code): every parameter with ndim <= 1 (norm weights, biases, LayerScale gammas), names
    ending in '.bias', and whatever ``model.no_weight_decay()`` lists. BiXT's latents are 3-D and are decayed.
    """
    skip_names: Iterable[str] = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    skip_names = set(skip_names)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias") or name in skip_names
        (no_decay if exempt else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# Devices where torch has a fused AdamW kernel for floating-point parameters (torch >= 2.4 on the CPU).
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def fused_adamw_applies(params: Iterable[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW (one kernel over all parameters) can take these. torch does not pick it by itself
    on the CPU, where its per-parameter loop costs a small model like the main job's a few percent of each step
    (README "Main job")."""
    params = list(params)
    return bool(params) and all(p.is_floating_point() and p.device.type in FUSED_ADAMW_DEVICES for p in params)


def build_optimizer(model: nn.Module, config: OptimSection) -> torch.optim.Optimizer:
    """AdamW, or LAMB close to the paper's timm 'lambc'.

    LAMB: weight decay added to the Adam update before the trust ratio (as in the LAMB paper and timm), gradients
    pre-scaled so their global norm is at most 1. One difference from timm's lambc: pytorch-optimizer bounds the
    weight norm in the trust ratio at 10 instead of clipping the ratio itself at 1.
    """
    groups = param_groups(model, config.weight_decay)
    if config.name == "adamw":
        fused = fused_adamw_applies(param for group in groups for param in group["params"])
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused)
    if config.name == "lamb":
        try:
            from pytorch_optimizer import Lamb
        except ImportError as error:
            raise ImportError("LAMB needs pytorch-optimizer: pip install 'bixt[train]'") from error
        return Lamb(
            groups,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            weight_decouple=False,
            pre_norm=True,
            max_grad_norm=1.0,
        )
    raise ValueError(f"optimizer must be 'adamw' or 'lamb', got {config.name!r}")
