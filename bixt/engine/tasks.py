"""What a task means to the engine: how a batch is fed to the model, the loss, and the metrics.

The engine knows nothing about architectures: a model is any ``nn.Module`` whose forward takes the batch's input
(or both inputs of a pair) plus any extra columns, and returns logits. Batches are what ``bixt.data`` yields:
``(input, target, *extra)`` stacked, or ``(input, mask, target, *extra)`` from the padded collate, where input
may be a pair (retrieval). Models derive padding masks from the ids themselves (0 = padding), except point models,
which take the mask as their second argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bixt.engine.config import RunConfig
from bixt.engine.metrics import IGNORE_INDEX, ConfusionMetrics, Metric, PointSegmentationMetrics, TopKAccuracy

# The metric that picks the best checkpoint, per task.
PRIMARY_METRIC = {
    "classification": "top1",
    "retrieval": "top1",
    "semantic_segmentation": "miou",
    "part_segmentation": "instance_miou",
}


@dataclass
class Batch:
    """One batch on the device. inputs: the positional arguments of ``model(...)``; target: labels."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor

    @property
    def size(self) -> int:
        return self.target.shape[0]


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, tuple | list):
        return tuple(_to(v, device) for v in value)
    return value.to(device, non_blocking=True)


def split_batch(batch: Any, *, padded: bool, mask_to_model: bool, device: torch.device) -> Batch:
    """A collated batch -> model inputs and target, on ``device``."""
    if not isinstance(batch, tuple | list) or len(batch) < 2:
        raise TypeError(f"a batch must be (input, target, *extra), got {type(batch).__name__}")
    batch = _to(batch, device)
    if padded:
        inputs, mask, target, *extra = batch
        if isinstance(inputs, tuple):  # a pair: model(ids_a, ids_b)
            return Batch(inputs, target)
        return Batch((inputs, mask, *extra) if mask_to_model else (inputs, *extra), target)
    inputs, target, *extra = batch
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return Batch((*inputs, *extra), target)


def takes_mask(model: nn.Module) -> bool:
    """Point models take (points, mask); sequence models derive the mask from padding ids."""
    import inspect

    parameters = list(inspect.signature(model.forward).parameters)
    return len(parameters) > 1 and parameters[1] == "mask"


def compute_loss(
    config: RunConfig, logits: torch.Tensor, target: torch.Tensor, *, training: bool = True
) -> torch.Tensor:
    """Mean loss of the batch. Classification: CE (hard or soft targets), or in training with ``loss: bce`` BCE on
    one-hot / soft targets (evaluation always reports CE, as the paper's code does); dense tasks: CE over pixels
    (logits (b, c, H, W)) or points (logits (b, n, c)), skipping IGNORE_INDEX labels."""
    task = config.task
    if task in ("classification", "retrieval"):
        if config.loss == "bce" and training:
            if target.ndim == 1:
                target = F.one_hot(target, logits.shape[1]).to(logits.dtype)
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return F.cross_entropy(logits, target, label_smoothing=config.augment.label_smoothing)
    if task == "semantic_segmentation":
        return F.cross_entropy(dense_logits(task, logits, target), target, ignore_index=IGNORE_INDEX)
    if task == "part_segmentation":
        return F.cross_entropy(logits.flatten(0, -2), target.flatten(), ignore_index=IGNORE_INDEX)
    raise ValueError(f"unknown task {task!r}; expected one of {sorted(PRIMARY_METRIC)}")


def build_metrics(task: str, num_classes: int) -> list[Metric]:
    if task in ("classification", "retrieval"):
        return [TopKAccuracy()]
    if task == "semantic_segmentation":
        return [ConfusionMetrics(num_classes, class_dim=1)]
    if task == "part_segmentation":
        return [PointSegmentationMetrics(num_classes)]
    raise ValueError(f"unknown task {task!r}; expected one of {sorted(PRIMARY_METRIC)}")


def dense_logits(task: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logits at the target's resolution (segmentation heads may predict at token resolution)."""
    if task == "semantic_segmentation" and logits.shape[-2:] != target.shape[-2:]:
        return F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits
