"""Residual-branch modifiers: stochastic depth (DropPath) and LayerScale."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Drops the whole residual branch per sample with probability `rate`, rescaling kept samples by 1/(1-rate).

    The branch output may broadcast over the batch (the learned latents before the first layer have batch 1), so the
    mask is drawn for the batch of the tensor it is applied to.
    """

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


def drop_path_schedule(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each of `depth` layers: linear from 0 at the first layer to `rate` at the last.

    Plain Python rather than torch.linspace, so that building a model on the meta device (cost counting) works.
    """
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (CaiT), initialised to a small constant."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def layer_scale_or_identity(dim: int, init_value: float | None) -> nn.Module:
    """LayerScale when `init_value` is given, otherwise a parameter-free identity (LayerScale off)."""
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)
