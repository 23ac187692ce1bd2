"""Task heads that read the encoder's outputs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from bixt.layers.blocks import layer_norm

HeadPool = Literal["avg", ""]
HEAD_POOLS: tuple[str, ...] = ("avg", "")


def check_pool(pool: str) -> str:
    if pool not in HEAD_POOLS:
        raise ValueError(f"global_pool must be 'avg' (mean over the latents) or '' (no pooling), got {pool!r}")
    return pool


class ClassificationHead(nn.Module):
    """Average the latents, LayerNorm, (dropout), Linear. latents: (b, m, dim) -> logits (b, num_classes).

    With ``pre_logits=True`` returns the normalised pooled features (b, dim). ``num_classes=0`` gives no classifier.
    ``pool=""`` skips the average: every latent is normalised and classified, (b, m, dim) -> (b, m, num_classes).
    """

    def __init__(self, dim: int, num_classes: int, *, drop: float = 0.0, pool: HeadPool = "avg") -> None:
        super().__init__()
        self.dim = dim
        self.pool = check_pool(pool)
        self.norm = layer_norm(dim)
        self.drop = nn.Dropout(drop)
        self.num_classes = num_classes
        self.fc = self._classifier(dim, num_classes)

    @staticmethod
    def _classifier(dim: int, num_classes: int) -> nn.Module:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = no classifier), got {num_classes}")
        if num_classes == 0:
            return nn.Identity()
        fc = nn.Linear(dim, num_classes)
        nn.init.zeros_(fc.weight)
        nn.init.zeros_(fc.bias)
        return fc

    def reset(self, num_classes: int, pool: HeadPool | None = None) -> None:
        """Replace the classifier with a fresh (zero-initialised) one for `num_classes` classes; `pool`: None keeps
        the current pooling. The new classifier takes the device, dtype and train/eval mode of the head."""
        like = next(self.parameters(), None)  # None once both the norm and the classifier are gone
        fc = self._classifier(self.dim, num_classes)
        self.fc = fc.to(device=like.device, dtype=like.dtype) if like is not None else fc
        self.fc.train(self.training)
        self.num_classes = num_classes
        if pool is not None:
            self.pool = check_pool(pool)

    def remove_norm(self) -> None:
        """Drop the LayerNorm (what stays is the pooling and the classifier): for backbones cut short."""
        self.norm = nn.Identity()

    def forward(self, latents: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(latents.mean(dim=1) if self.pool == "avg" else latents)
        return x if pre_logits else self.fc(self.drop(x))
