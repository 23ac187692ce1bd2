"""Task heads that read the encoder's outputs."""

from __future__ import annotations

import torch
from torch import nn

from bixt.layers.blocks import layer_norm


class ClassificationHead(nn.Module):
    """Average the latents, LayerNorm, (dropout), Linear. latents: (b, m, dim) -> logits (b, num_classes).

    With ``pre_logits=True`` returns the normalised pooled features (b, dim). ``num_classes=0`` gives no classifier.
    """

    def __init__(self, dim: int, num_classes: int, *, drop: float = 0.0) -> None:
        super().__init__()
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

    def reset(self, num_classes: int) -> None:
        """Replace the classifier with a fresh (zero-initialised) one for `num_classes` classes."""
        weight = self.norm.weight
        self.fc = self._classifier(weight.shape[0], num_classes).to(device=weight.device, dtype=weight.dtype)
        self.num_classes = num_classes

    def forward(self, latents: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(latents.mean(dim=1))
        return x if pre_logits else self.fc(self.drop(x))
