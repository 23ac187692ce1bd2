"""This project's own checkpoint format: a directory with ``model.safetensors`` and ``config.json``.

config.json = {"format": 1, "architecture": <class name>, "config": <the model's config dataclass>,
"weights_sha256": <sha256 of model.safetensors>}. Both files are written to temporary names and renamed, so an
interrupted save never leaves a half-written file behind; loading checks the weights against their sha256 (files
saved before the checksum was recorded load unchecked), so a damaged file is named instead of loading silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from bixt.fileio import DamagedFileError, atomic_write, check_sha256, sha256_file
from bixt.models.model_card import TrainingSummary, write_model_card

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
MODEL_CONFIG_NAME = "config.json"  # a saved model's architecture and config; a run's is the engine's config.yaml


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
        atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(_contiguous_state(self), tmp))
        meta = {
            "format": FORMAT_VERSION,
            "architecture": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "weights_sha256": sha256_file(directory / WEIGHTS_NAME),
        }
        atomic_write(directory / MODEL_CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        write_model_card(self, directory, name=name, training=training)
        return directory

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Upload to the Hugging Face Hub (`bixt.models.hub.push_to_hub`); returns the commit URL."""
        from bixt.models.hub import push_to_hub

        return push_to_hub(self, repo_id, **options)


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; DamagedFileError naming the file if it is not one (e.g. truncated)."""
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(f"{path} is damaged: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise DamagedFileError(f"{path} is damaged: expected a JSON object, got {type(meta).__name__}")
    return meta


def load_weights_file(path: Path, *, sha256: str | None, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against ``sha256`` when one was recorded."""
    if sha256 is not None:
        check_sha256(path, sha256, "the file cannot be trusted; use another copy or checkpoint")
    try:
        return load_file(path, device=str(device))
    except SafetensorError as error:
        raise DamagedFileError(f"{path} is damaged: not a readable safetensors file ({error})") from None


def from_pretrained(
    directory: str | os.PathLike, *, map_location: str | torch.device = "cpu", revision: str | None = None
) -> nn.Module:
    """Rebuild a model saved with ``save_pretrained`` (architecture, config and weights, checked by sha256), from a
    local directory or a Hugging Face Hub repo id ("owner/name", at `revision`)."""
    from bixt.models.hub import resolve_pretrained_dir
    from bixt.models.registry import ARCHITECTURES

    directory = resolve_pretrained_dir(directory, revision=revision)
    config_path, weights_path = directory / MODEL_CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: expected a directory written by save_pretrained()")
    meta = read_json(config_path)
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported format {meta.get('format')!r} (expected {FORMAT_VERSION})")
    architecture = meta.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{config_path}: unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    model_class = ARCHITECTURES[architecture]
    if not isinstance(meta.get("config"), dict):
        raise DamagedFileError(f"{config_path} is damaged: no 'config' object")
    try:
        model = model_class(model_class.config_class(**meta["config"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: the saved config does not build a {architecture}: {error}") from error
    state = load_weights_file(weights_path, sha256=meta.get("weights_sha256"), device=map_location)
    load_state_checked(model, state, weights_path)
    return model


class MissingWeightsError(ValueError):
    """A state dict lacks weights that the model loading it needs."""


def _shape_mismatches(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], keys) -> list[str]:
    """``"key (file shape) vs (model shape)"`` for each of ``keys`` whose shapes differ."""
    return [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in keys if state[k].shape != own[k].shape]


@dataclasses.dataclass(frozen=True)
class BackboneLoad:
    """What ``load_backbone_weights`` did: the model's keys the source lacked (left as initialised) and the source's
    keys this model has no use for (a classifier's head, layers beyond this model's depth)."""

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unused: tuple[str, ...]

    def describe(self, source: str) -> str:
        text = f"initialised from {source}: {len(self.loaded)} weights loaded, {len(self.unused)} of the source unused"
        if self.missing:
            text += f"; {len(self.missing)} not in the source, kept as initialised: {', '.join(self.missing)}"
        return text


def load_backbone_weights(
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    *,
    head_prefix: str = "head.",
    allow_missing: bool = False,
) -> BackboneLoad:
    """Load every weight of ``model`` except its head (keys under ``head_prefix``) from another model's state dict,
    matched by name: a classifier's tokenizer and encoder into a segmenter, say.

    A weight of another shape is an error. So is a weight the source lacks, unless ``allow_missing``: a d12
    classifier's one-sided last layer has no token side, which a dense model's last layer needs, and those weights
    then keep their initialisation.
    """
    own = model.state_dict()
    wanted = sorted(key for key in own if not key.startswith(head_prefix))
    missing = tuple(key for key in wanted if key not in state_dict)
    if missing and not allow_missing:
        raise MissingWeightsError(
            f"the state dict lacks backbone weights of this model: {list(missing[:5])} ({len(missing)} in all)"
        )
    loaded = tuple(key for key in wanted if key in state_dict)
    mismatched = _shape_mismatches(own, state_dict, loaded)
    if mismatched:
        raise ValueError(f"backbone weights of another shape (source vs model): {', '.join(mismatched[:3])}")
    if not loaded:
        raise ValueError("the state dict shares no backbone weight name with this model")
    model.load_state_dict({key: state_dict[key] for key in loaded}, strict=False)
    unused = tuple(sorted(set(state_dict) - set(loaded)))
    return BackboneLoad(loaded=loaded, missing=missing, unused=unused)


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """``model.load_state_dict(state)``; a mismatch is a short ValueError naming ``source`` and the first keys."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    mismatched = _shape_mismatches(own, state, [k for k in own if k in state])
    problems = [
        f"{len(items)} {what}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
        for what, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("of another shape (file vs model)", mismatched),
        )
        if items
    ]
    if problems:
        raise ValueError(f"the weights in {source} do not fit this model; keys " + "; ".join(problems))
    model.load_state_dict(state)
