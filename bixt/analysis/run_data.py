"""A trained run as the analyses need it: its model at any checkpoint (or at initialisation) and its test images,
processed exactly as its evaluation processed them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bixt.engine.builders import build_augment, build_model, load_split
from bixt.engine.checkpoint import CHECKPOINTS, load_weights, read_meta, resolve_checkpoint, run_dir_of
from bixt.engine.config import RunConfig, load_config
from bixt.engine.run_dir import RUN_CONFIG_NAME
from bixt.engine.tasks import Batch


@dataclass
class EvalImages:
    """``raw``: (b, c, H, W) as stored (for drawing); ``inputs``: what the model saw; ``labels``: (b,)."""

    raw: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor


def run_config(path: str | os.PathLike) -> tuple[Path, RunConfig]:
    """The run directory of a run or checkpoint path, and its saved config."""
    run_dir = run_dir_of(resolve_checkpoint(path, prefer="last"))
    return run_dir, load_config(run_dir / RUN_CONFIG_NAME)


def epoch_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, checkpoint) for every kept checkpoint written at the end of an epoch, in training order."""
    found = []
    for checkpoint in sorted((run_dir / CHECKPOINTS).glob("step-*")):
        meta = read_meta(checkpoint)
        if meta["batch_in_epoch"] == 0:  # step checkpoints inside an epoch are not epoch ends
            found.append((meta["epoch"], checkpoint))
    return found


def model_at(config: RunConfig, checkpoint: Path | None) -> nn.Module:
    """The run's model with a checkpoint's weights, or (None) with the weights training started from: `fit` seeds
    the generator with the run's seed right before building the model, and so does this."""
    torch.manual_seed(config.seed)
    model = build_model(config)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    return model.eval()


def eval_images(config: RunConfig, count: int) -> EvalImages:
    """The first `count` items of the run's evaluation split (image data sets), raw and as the model sees them."""
    dataset = load_split(config, config.data.eval_split, count)
    if len(dataset) == 0:
        raise ValueError(f"the evaluation split of {config.data.name!r} is empty")
    items = [dataset[i] for i in range(len(dataset))]
    raw = torch.stack([torch.as_tensor(image) for image, _ in items])
    labels = torch.as_tensor([int(label) for _, label in items])
    if raw.ndim != 4:
        raise ValueError(f"attention analyses need image data (b, c, H, W); {config.data.name!r} gives {raw.shape}")
    augment = build_augment(config, train=False, num_classes=0, device=torch.device("cpu"))
    inputs = augment(Batch((raw,), labels)).inputs[0] if augment is not None else raw
    return EvalImages(raw=raw.float(), inputs=inputs, labels=labels)
