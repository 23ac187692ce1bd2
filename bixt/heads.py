"""Heads that predict one output per input: classification of one input (`ClassificationHead`) and of a pair of
inputs (`RetrievalPairHead`), and what heads with hidden layers share (`HiddenLayerHead`). Per-token heads are in
`bixt.heads_dense`."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from bixt.layers.blocks import layer_norm

HeadPool = Literal["avg", ""]
HEAD_POOLS: tuple[str, ...] = get_args(HeadPool)


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


def check_classes(num_classes: int) -> None:
    if num_classes < 1:
        raise ValueError(f"this head needs num_classes >= 1, got {num_classes}")


def zero_classifier(old: nn.Linear, num_classes: int) -> nn.Linear:
    """A fresh, zero-initialised Linear replacing `old` for `num_classes` outputs (same input width, device, dtype)."""
    check_classes(num_classes)
    fc = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)
    nn.init.zeros_(fc.weight)
    nn.init.zeros_(fc.bias)
    return fc


class HiddenLayerHead(nn.Module):
    """Heads ending in ``hidden`` Linear -> GELU -> ``fc``: their shared initialisation and classifier reset.

    `reset_parameters` is their own initialisation, which `bixt.layers.init.init_weights_jax` calls after its generic
    pass (that pass zeroes every Linear under ``head``, right for a classifier, but it would leave ``hidden`` dead)."""

    hidden: nn.Linear
    fc: nn.Linear
    num_classes: int

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.hidden.weight)
        nn.init.zeros_(self.hidden.bias)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def reset(self, num_classes: int) -> None:
        self.fc = zero_classifier(self.fc, num_classes)
        self.num_classes = num_classes


class RetrievalPairHead(HiddenLayerHead):
    """u, v: (b, dim) pooled encodings of the two inputs -> logits (b, num_classes).

    Both are layer-normalised, combined as [u, v, u*v, u-v] (b, 4*dim) and classified by a one-hidden-layer MLP.
    ``pre_logits=True`` returns the hidden features (b, hidden_dim).
    """

    def __init__(self, dim: int, num_classes: int = 2, *, hidden_dim: int = 256) -> None:
        super().__init__()
        check_classes(num_classes)
        self.num_classes = num_classes
        self.norm = layer_norm(dim)
        self.hidden = nn.Linear(4 * dim, hidden_dim)
        self.act = nn.GELU()
        self.fc = nn.Linear(hidden_dim, num_classes)

    def forward(self, u: torch.Tensor, v: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        u, v = self.norm(u), self.norm(v)
        hidden = self.act(self.hidden(torch.cat((u, v, u * v, u - v), dim=-1)))
        return hidden if pre_logits else self.fc(hidden)
