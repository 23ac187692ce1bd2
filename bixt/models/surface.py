"""The model surface every registered model shares: one mixin, so that a new family is a tokenizer and a head.

A model built on `EncoderModelMixin` keeps its config as ``self.config`` (with a ``num_classes`` field), its encoder
as ``self.encoder`` (with a ``grad_checkpointing`` switch) and its head as ``self.head`` (with ``num_classes`` and
``reset(num_classes)``), and defines ``forward_features(*inputs, intermediates=None)`` and ``forward_head(features,
pre_logits=False)``. The mixin gives it the rest: ``num_classes``, ``reset_classifier``, the intermediates wrapper,
gradient checkpointing and the weight-decay exemptions.

timm's model contract (a tensor-valued ``forward_features``, ``num_features``, ``forward_intermediates(indices=...)``,
``feature_info``) is so far kept by the image classifiers only (`bixt.models.bixt.BiXT`, which overrides
``forward_intermediates`` with timm's signature); this mixin is where it goes for every family.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bixt.models.encoder import Intermediates


class EncoderModelMixin:
    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh, zero-initialised classifier for `num_classes` outputs (0 = none, where the head allows it); the
        config follows. global_pool (timm's argument; models whose config has that field): "avg", "" (no pooling)
        or None (keep)."""
        pooled = hasattr(self.config, "global_pool")
        if global_pool is not None and not pooled:
            raise ValueError(f"{type(self).__name__} has no pooling to choose; pass global_pool=None")
        if global_pool is None:
            self.head.reset(num_classes)
        else:
            self.head.reset(num_classes, global_pool)
        changes = {"global_pool": self.head.pool} if pooled else {}
        self.config = dataclasses.replace(self.config, num_classes=num_classes, **changes)

    def forward_intermediates(self, *inputs: Any) -> tuple[Any, Intermediates]:
        """The final features (as `forward_features`) and every layer's outputs (`Intermediates`)."""
        intermediates = Intermediates()
        return self.forward_features(*inputs, intermediates=intermediates), intermediates

    def no_weight_decay(self) -> set[str]:
        """Parameter names exempt from weight decay beyond the usual 1-D rule (norms, biases, LayerScale).

        Empty by default: in the paper's recipe the latents (a 3-D tensor) are decayed like any weight matrix.
        """
        return set()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer in the backward pass instead of storing its activations."""
        self.encoder.grad_checkpointing = enable
