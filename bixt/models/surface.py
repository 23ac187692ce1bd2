"""The defaults of the timm-style model surface that every registered model shares.

A model keeps its encoder as ``self.encoder`` (with a ``grad_checkpointing`` switch); models that differ override.
"""

from __future__ import annotations


class EncoderModelMixin:
    def no_weight_decay(self) -> set[str]:
        """Parameter names exempt from weight decay beyond the usual 1-D rule (norms, biases, LayerScale).

        Empty by default: in the paper's recipe the latents (a 3-D tensor) are decayed like any weight matrix.
        """
        return set()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer in the backward pass instead of storing its activations."""
        self.encoder.grad_checkpointing = enable
