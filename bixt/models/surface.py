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

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh, zero-initialised classifier for `num_classes` outputs; the config follows."""
        self.head.reset(num_classes)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)

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
