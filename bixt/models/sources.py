"""Where a command's model comes from: a saved checkpoint directory, a run directory, or a registered name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bixt.models.registry import create_model, list_models
from bixt.models.serialization import MODEL_CONFIG_NAME, WEIGHTS_NAME, from_pretrained


@dataclass
class LoadedModel:
    model: nn.Module
    name: str  # the registry name, or the architecture of a saved checkpoint
    checkpoint: Path | None  # the save_pretrained directory it came from (None for a registry name)
    pretrained: bool  # False: a registry name without weights, i.e. random initialisation


def load_model(source: str | os.PathLike, *, weights: str | os.PathLike | None = None) -> LoadedModel:
    """source: a `save_pretrained` / training checkpoint directory, a run directory (its best checkpoint), or a
    registered model name, whose weights come from `weights` (the authors' checkpoint, via `load_official`)."""
    path = Path(source)
    if path.is_dir():
        if weights is not None:
            raise ValueError(f"{path} is a checkpoint; --weights applies to registered model names only")
        if not ((path / MODEL_CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()):
            from bixt.engine.checkpoint import resolve_checkpoint

            path = resolve_checkpoint(path, prefer="best")
        model = from_pretrained(path)
        return LoadedModel(model, type(model).__name__, path, True)
    if str(source) in list_models():
        model = create_model(str(source))
        if weights is not None:
            from bixt.convert import load_official

            load_official(model, weights)
        return LoadedModel(model, str(source), None, weights is not None)
    raise FileNotFoundError(
        f"{source!r} is neither a checkpoint directory ({MODEL_CONFIG_NAME} + {WEIGHTS_NAME}), a run directory nor a "
        "registered model name (see `bixt models`)"
    )
