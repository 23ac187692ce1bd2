"""FLOPs and activations in the paper's convention (fvcore's): one multiply-add counts as one FLOP, and
"activations" are the output elements of every matmul / linear / convolution / einsum, at the given batch.

Counting happens at the ATen level (a TorchDispatchMode), so it sees what actually runs, whatever module produced it.
Counted ops: mm, addmm, bmm, baddbmm, convolution and the fused scaled-dot-product-attention kernels (as the two
matmuls they replace: Q K^T and attention x V). Normalisation, activation functions and additions are not counted,
which puts BiXT-Ti/16 at 1.672 G where fvcore, which adds a little for those, reports 1.679 G.

BiXT's bi-directional attention shares one similarity matrix between its two directions. The fused path computes it
twice (once per direction), the explicit path once; counting runs every model on the explicit path, so the figures are
those of the architecture (as in the paper), not of one kernel choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from bixt.layers.attention_paths import attention_path

aten = torch.ops.aten


@dataclass
class Cost:
    flops: int = 0  # multiply-adds
    activations: int = 0  # output elements of counted ops


def _mm(inputs: tuple, out: torch.Tensor) -> int:
    # (.., i, k) @ (.., k, j): one MAC per output element per k
    a = inputs[-2]
    return out.numel() * a.shape[-1]


def _conv(inputs: tuple, out: torch.Tensor) -> int:
    weight = inputs[1]
    return out.numel() * math.prod(weight.shape[1:])  # (c_in / groups) * kernel area per output element


def _sdpa(inputs: tuple, outs: Any) -> tuple[int, int]:
    q, k, v = inputs[:3]
    out = outs[0] if isinstance(outs, tuple | list) else outs
    *batch, lq, d = q.shape
    lk, dv = k.shape[-2], v.shape[-1]
    b = math.prod(batch)
    return b * lq * lk * (d + dv), b * lq * lk + out.numel()


_MATMUL_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}
_CONV_OPS = {aten.convolution.default}
_SDPA_OPS = {
    getattr(aten, name).default
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    if hasattr(aten, name)
}


class _CostMode(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.cost = Cost()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _MATMUL_OPS:
            # addmm / baddbmm carry the bias first; the last two inputs are the matmul operands
            self.cost.flops += _mm(args[:3] if func in (aten.addmm.default, aten.baddbmm.default) else args, out)
            self.cost.activations += out.numel()
        elif func in _CONV_OPS:
            self.cost.flops += _conv(args, out)
            self.cost.activations += out.numel()
        elif func in _SDPA_OPS:
            flops, acts = _sdpa(args, out)
            self.cost.flops += flops
            self.cost.activations += acts
        return out


def count_cost(model: nn.Module, *inputs: Any, **kwargs: Any) -> Cost:
    """FLOPs (multiply-adds) and activations of one ``model(*inputs, **kwargs)`` call, in eval mode, no grad."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), attention_path("explicit"), _CostMode() as mode:
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
    return mode.cost


def count_flops(model: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """Multiply-adds of one forward pass (the paper's "FLOPs")."""
    return count_cost(model, *inputs, **kwargs).flops


def count_activations(model: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """Output elements of all matmul/linear/conv ops in one forward pass (the paper's "Mem." column)."""
    return count_cost(model, *inputs, **kwargs).activations
