"""Validation shared by the config dataclasses of every model family (each adds its own specific checks).

Every field is checked against its annotation first, so that a value of the wrong type fails with its name instead
of building something else: ``depth=True`` (a bool is an int to Python) would build one layer, ``qkv_bias="no"``
(a non-empty string is true) would turn the bias on, ``num_classes="10"`` would fail deep inside a comparison.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal

_SIZE_FIELDS = ("embed_dim", "depth", "num_heads", "num_latents", "img_size", "in_chans")
_RATE_FIELDS = ("drop_path_rate", "attn_drop_rate", "drop_rate")
# a ratio of 0 builds zero-width layers; no frequency of 0 exists; a scale of 0 erases the coordinates
_POSITIVE_REALS = ("mlp_ratio", "max_freq", "local_scale")


def check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, expected: Any) -> bool:
    """Whether ``value`` is of the annotated type; an int is a float, a bool is neither an int nor a float."""
    origin = typing.get_origin(expected)
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin is not None and isinstance(origin, type):
        return isinstance(value, origin)
    return True  # an annotation this check does not know: the model's own checks decide


def describe_type(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin is Literal:
        return "one of " + ", ".join(repr(option) for option in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(option) for option in typing.get_args(expected))
    if expected is type(None):
        return "None"
    if origin is tuple:
        items = typing.get_args(expected)
        if len(items) == 2 and items[1] is Ellipsis:
            return f"a list of {describe_type(items[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(items)}: [{', '.join(describe_type(item) for item in items)}]"
    if origin is dict:
        return "a mapping {key: value, ...}"
    names = {bool: "a bool (true / false)", int: "an integer", float: "a number", str: "a string"}
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def _is_choice(expected: Any) -> bool:
    if typing.get_origin(expected) is Literal:
        return True
    return typing.get_origin(expected) in (typing.Union, types.UnionType) and any(
        typing.get_origin(option) is Literal for option in typing.get_args(expected)
    )


def check_types(config: Any) -> None:
    """TypeError naming the first field whose value is not of its annotated type (ValueError for a string that is
    not one of a field's choices, like an unknown tokenizer)."""
    hints = _field_types(type(config))
    for f in dataclasses.fields(config):
        value, expected = getattr(config, f.name), hints[f.name]
        if not _matches(value, expected):
            error = ValueError if isinstance(value, str) and _is_choice(expected) else TypeError
            got = f"got {value!r} ({type(value).__name__})"
            raise error(f"{type(config).__name__}.{f.name} must be {describe_type(expected)}, {got}")


def check_common(config: Any) -> None:
    """Check every field's type, then the fields a config has of those most share: sizes positive, width divisible
    by heads, classes >= 0 (0 = no classifier), ratios > 0 and dropout-type rates in [0, 1)."""
    check_types(config)
    check_positive(**{name: getattr(config, name) for name in _SIZE_FIELDS if hasattr(config, name)})
    if hasattr(config, "num_heads") and config.embed_dim % config.num_heads:
        raise ValueError(f"embed_dim ({config.embed_dim}) must be divisible by num_heads ({config.num_heads})")
    if getattr(config, "num_classes", 0) < 0:
        raise ValueError(f"num_classes must be >= 0 (0 = no classifier), got {config.num_classes}")
    for name in _POSITIVE_REALS:
        if hasattr(config, name) and not (getattr(config, name) > 0 and math.isfinite(getattr(config, name))):
            raise ValueError(f"{name} must be a finite number > 0, got {getattr(config, name)}")
    for name in _RATE_FIELDS:
        if hasattr(config, name):
            check_rate(name, getattr(config, name))
