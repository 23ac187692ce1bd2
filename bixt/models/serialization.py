"""This project's own checkpoint format: a directory with ``model.safetensors`` and ``config.json``.

config.json = {"format": 1, "architecture": <class name>, "config": <the model's config dataclass>}. Both files are
written to temporary names and renamed, so an interrupted save never leaves a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bixt.fileio import atomic_write
from bixt.models.model_card import TrainingSummary, write_model_card

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _contiguous_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


class PretrainedMixin:
    """Adds ``save_pretrained(directory)`` and ``push_to_hub(repo_id)`` to a registered model class with a ``config``
    dataclass. Beside the weights and config, a model card (README.md, `bixt.models.model_card`) is written."""

    def save_pretrained(
        self, directory: str | os.PathLike, *, name: str | None = None, training: TrainingSummary | None = None
    ) -> Path:
        """name: the title of the model card; training: what the card says about the run (see `training_summary`)."""
        directory = Path(directory)
        meta = {
            "format": FORMAT_VERSION,
            "architecture": type(self).__name__,
            "config": dataclasses.asdict(self.config),
        }
        atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(_contiguous_state(self), tmp))
        atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        write_model_card(self, directory, name=name, training=training)
        return directory

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Upload to the Hugging Face Hub (`bixt.models.hub.push_to_hub`); returns the commit URL."""
        from bixt.models.hub import push_to_hub

        return push_to_hub(self, repo_id, **options)


def from_pretrained(
    directory: str | os.PathLike, *, map_location: str | torch.device = "cpu", revision: str | None = None
) -> nn.Module:
    """Rebuild a model saved with ``save_pretrained`` (architecture, config and weights), from a local directory or a
    Hugging Face Hub repo id ("owner/name", at `revision`)."""
    from bixt.models.hub import resolve_pretrained_dir
    from bixt.models.registry import ARCHITECTURES

    directory = resolve_pretrained_dir(directory, revision=revision)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: expected a directory written by save_pretrained()")
    meta = json.loads(config_path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported format {meta.get('format')!r} (expected {FORMAT_VERSION})")
    architecture = meta.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{config_path}: unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    model_class = ARCHITECTURES[architecture]
    model = model_class(model_class.config_class(**meta["config"]))
    model.load_state_dict(load_file(weights_path, device=str(map_location)))
    return model
