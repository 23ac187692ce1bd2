"""Model registry: names -> (model class, default config); `create_model`, `list_models`.

A model class registered here takes a single config dataclass (its ``config_class``) and keeps it as ``.config``;
that is what `save_pretrained` / `from_pretrained` serialise.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any

from torch import nn

ARCHITECTURES: dict[str, type[nn.Module]] = {}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type[nn.Module]
    config: Any  # a dataclass instance of model_class.config_class


_MODELS: dict[str, ModelEntry] = {}


def register_architecture(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make `cls` loadable by `from_pretrained` under its class name."""
    ARCHITECTURES[cls.__name__] = cls
    return cls


def register_model(name: str, model_class: type[nn.Module], config: Any) -> None:
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if not isinstance(config, model_class.config_class):
        raise TypeError(f"{name}: config must be a {model_class.config_class.__name__}, got {type(config).__name__}")
    _MODELS[name] = ModelEntry(name, model_class, config)


def replace_config(config: Any, overrides: dict[str, Any]) -> Any:
    """`dataclasses.replace` that names the valid fields when an override is unknown."""
    valid = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {type(config).__name__}; valid options: {valid}")
    return dataclasses.replace(config, **overrides)


def get_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f"; did you mean {close}?" if close else "; see bixt.list_models()"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model `name`, with any config field overridden (unknown fields raise TypeError).

    >>> model = create_model("bixt_ti_l64_p16", num_classes=10, img_size=32)
    """
    entry = get_entry(name)
    return entry.model_class(replace_config(entry.config, overrides))


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style `pattern`, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))
