"""The dtype check shared by the tokenizers of float inputs (images, point clouds).

A float64, float16 or integer batch would otherwise fail inside torch with "Input type (double) and bias type
(float) should be the same". Under autocast, float32 and the autocast dtype are fine too: autocast casts them.
"""

from __future__ import annotations

import torch


def check_float_input(x: torch.Tensor, weight: torch.Tensor, what: str) -> None:
    """TypeError unless ``x`` is a float tensor the model's first layer (``weight``) can take."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {what} as a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"expected float {what} ({weight.dtype}), got {x.dtype}; convert first (8-bit images: x.float() / 255)"
        )
    if x.dtype == weight.dtype or x.is_meta:  # meta: shapes only (cost counting), and no autocast there
        return
    accepted = {weight.dtype}
    if torch.is_autocast_enabled(x.device.type):
        accepted |= {torch.float32, torch.get_autocast_dtype(x.device.type)}
    if x.dtype not in accepted:
        raise TypeError(
            f"expected {what} of the model's dtype {weight.dtype}, got {x.dtype}; cast with x.to({weight.dtype})"
        )
