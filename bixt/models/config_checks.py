"""Validation shared by the config dataclasses of every model family (each adds its own specific checks)."""

from __future__ import annotations

from typing import Any

_SIZE_FIELDS = ("embed_dim", "depth", "num_heads", "num_latents", "img_size", "in_chans")
_RATE_FIELDS = ("drop_path_rate", "attn_drop_rate", "drop_rate")


def check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_common(config: Any) -> None:
    """Check the fields a config has of those most share: sizes positive, width divisible by heads, classes >= 0
    (0 = no classifier) and dropout-type rates in [0, 1)."""
    check_positive(**{name: getattr(config, name) for name in _SIZE_FIELDS if hasattr(config, name)})
    if hasattr(config, "num_heads") and config.embed_dim % config.num_heads:
        raise ValueError(f"embed_dim ({config.embed_dim}) must be divisible by num_heads ({config.num_heads})")
    if getattr(config, "num_classes", 0) < 0:
        raise ValueError(f"num_classes must be >= 0 (0 = no classifier), got {config.num_classes}")
    for name in _RATE_FIELDS:
        if hasattr(config, name):
            check_rate(name, getattr(config, name))
