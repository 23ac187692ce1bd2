"""What a task means to the engine: one :class:`Task` per task in :data:`TASKS`, and how a batch becomes the model's
arguments.

A task says what its logits look like, its loss, its metrics, the metric that picks the best checkpoint, and whether
batch-mixing augmentations apply; adding a task is one entry in :data:`TASKS`. The engine knows nothing about
architectures: a model is any ``nn.Module`` that returns logits and declares, in a class attribute ``inputs``, the
names of its forward's positional arguments (e.g. ``("points", "category", "mask")``). Batches are what
``bixt.data`` yields: ``(input, target, *extra)`` stacked, or ``(input, mask, target, *extra)`` from the padded
collate, where input may be a pair (retrieval). The input (or both inputs of a pair) fills the first declared names,
``"mask"`` gets the padding mask, and the extra columns fill the other names in order. A model that declares nothing
gets the input and the extra columns as they come, without the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bixt.data.collate import IGNORE_INDEX
from bixt.engine.config import ConfigError, RunConfig
from bixt.engine.distributed import all_reduce_sum
from bixt.engine.metrics import ConfusionMetrics, Metric, PointSegmentationMetrics, TopKAccuracy

MASK = "mask"  # the declared input name that receives the padding mask


class BatchError(ValueError):
    """A batch the model or the task cannot take (non-finite inputs, labels beyond the classes): names what it
    expected."""


@dataclass
class Batch:
    """One batch on the device. inputs: the positional arguments of ``model(...)`` (None where a declared input
    before a given one has no column, e.g. no category); target: labels."""

    inputs: tuple[torch.Tensor | None, ...]
    target: torch.Tensor

    @property
    def size(self) -> int:
        return self.target.shape[0]


def _classification_loss(config: RunConfig, logits: torch.Tensor, target: torch.Tensor, training: bool) -> torch.Tensor:
    """CE (hard or soft targets), or in training with ``loss: bce`` BCE on one-hot / soft targets (evaluation always
    reports CE, as the paper's code does)."""
    if config.loss == "bce" and training:
        if target.ndim == 1:
            target = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return F.cross_entropy(logits, target, label_smoothing=config.augment.label_smoothing)


def _resized(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dense logits (b, c, h, w) at the target's resolution (b, H, W)."""
    if logits.shape[-2:] != target.shape[-2:]:
        return F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def _pixel_loss(config: RunConfig, logits: torch.Tensor, target: torch.Tensor, training: bool) -> torch.Tensor:
    """CE over pixels, logits (b, c, H, W) at the target's resolution, skipping IGNORE_INDEX labels."""
    return F.cross_entropy(_resized(logits, target), target, ignore_index=IGNORE_INDEX)


def _point_loss(config: RunConfig, logits: torch.Tensor, target: torch.Tensor, training: bool) -> torch.Tensor:
    """CE over points, logits (b, n, c), skipping IGNORE_INDEX labels (padding)."""
    return F.cross_entropy(logits.flatten(0, -2), target.flatten(), ignore_index=IGNORE_INDEX)


@dataclass(frozen=True)
class Task:
    """One task: what the labels are to the engine.

    ``logits_axes`` names the axes of the model's output (``"classes"`` among them); ``loss(config, logits, target,
    training)`` is the batch's mean loss; ``metrics(num_classes)`` the fresh metrics of one evaluation, whose
    ``primary_metric`` picks the best checkpoint; ``mixes_batches``: mixup / cutmix (soft targets) apply;
    ``resizes_logits``: logits at another resolution than the labels are resized to it (segmentation heads may
    predict at token resolution).
    """

    name: str
    primary_metric: str
    logits_axes: tuple[str, ...]
    loss: Callable[[RunConfig, torch.Tensor, torch.Tensor, bool], torch.Tensor]
    metrics: Callable[[int], list[Metric]]
    mixes_batches: bool = False
    resizes_logits: bool = False

    @property
    def layout(self) -> str:
        return f"({', '.join(self.logits_axes)})"

    @property
    def class_dim(self) -> int:
        return self.logits_axes.index("classes")

    def at_target_size(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logits at the target's resolution."""
        return _resized(logits, target) if self.resizes_logits else logits


# Every task the engine trains, by the name a recipe's ``task`` gives.
TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "classification",
            primary_metric="top1",
            logits_axes=("batch", "classes"),
            loss=_classification_loss,
            metrics=lambda num_classes: [TopKAccuracy()],
            mixes_batches=True,
        ),
        Task(
            "retrieval",
            primary_metric="top1",
            logits_axes=("batch", "classes"),
            loss=_classification_loss,
            metrics=lambda num_classes: [TopKAccuracy()],
        ),
        Task(
            "semantic_segmentation",
            primary_metric="miou",
            logits_axes=("batch", "classes", "height", "width"),
            loss=_pixel_loss,
            metrics=lambda num_classes: [ConfusionMetrics(num_classes, class_dim=1)],
            resizes_logits=True,
        ),
        Task(
            "part_segmentation",
            primary_metric="instance_miou",
            logits_axes=("batch", "points", "classes"),
            loss=_point_loss,
            metrics=lambda num_classes: [PointSegmentationMetrics(num_classes)],
        ),
    )
}
# The metric that picks the best checkpoint, per task name.
PRIMARY_METRIC = {name: task.primary_metric for name, task in TASKS.items()}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(map(repr, TASKS))}; got {name!r}")
    return TASKS[name]


def compute_loss(
    task: Task, config: RunConfig, logits: torch.Tensor, target: torch.Tensor, *, training: bool = True
) -> torch.Tensor:
    """Mean loss of the batch under ``task``."""
    return task.loss(config, logits, target, training)


def declared_inputs(model: nn.Module) -> tuple[str, ...] | None:
    """The names of the model's positional forward arguments, as its class declares them (None: undeclared)."""
    inputs = getattr(model, "inputs", None)
    if inputs is not None and not (isinstance(inputs, tuple) and all(isinstance(name, str) for name in inputs)):
        raise TypeError(f"{type(model).__name__}.inputs must be a tuple of argument names, got {inputs!r}")
    return inputs


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, tuple | list):
        return tuple(_to(v, device) for v in value)
    return value.to(device, non_blocking=True)


def _arguments(
    data: tuple[torch.Tensor, ...], mask: Any, extra: list[torch.Tensor], inputs: tuple[str, ...] | None
) -> tuple[Any, ...]:
    """The model's positional arguments for its declared ``inputs``; unfilled trailing names are left to the
    model's defaults."""
    if inputs is None:
        return (*data, *extra)
    if len(inputs) < len(data):
        raise BatchError(f"the batch has {len(data)} inputs, but the model takes only {inputs}")
    others = [name for name in inputs[len(data) :] if name != MASK]
    if len(extra) > len(others):
        raise BatchError(
            f"the batch has {len(extra)} extra column(s) after the target, but the model takes {inputs}, leaving "
            f"{len(others)} for them"
        )
    values = dict(zip(inputs, data, strict=False)) | dict(zip(others, extra, strict=False)) | {MASK: mask}
    arguments = [values.get(name) for name in inputs]
    while arguments and arguments[-1] is None:
        arguments.pop()
    return tuple(arguments)


def label_beyond(labels: torch.Tensor, num_classes: int) -> int | None:
    """A label outside 0..num_classes-1 (the largest if one is too large), IGNORE_INDEX aside; None if all fit."""
    real = labels[labels != IGNORE_INDEX]
    if real.numel() and real.max() >= num_classes:
        return int(real.max())
    if real.numel() and real.min() < 0:
        return int(real.min())
    return None


def batch_problem(batch: Batch, *, names: tuple[str, ...] | None, num_classes: int | None, what: str) -> str | None:
    """What is wrong with a batch, or None: a non-finite floating-point input, or an integer label (IGNORE_INDEX
    aside) beyond ``num_classes`` (None: not checked). ``what`` names the batch ("evaluation batch 3").

    One host synchronisation for a good batch. An input is tested through its sum, finite whenever every value is
    (20x cheaper than testing each value on CPU); only a sum that is not (a NaN or inf, or an overflow of finite
    values) has its values tested one by one."""
    floats = [(i, x) for i, x in enumerate(batch.inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    flags = [
        torch.isfinite(x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)) for _, x in floats
    ]
    target = batch.target
    labelled = num_classes is not None and not target.is_floating_point() and target.dtype != torch.bool
    if labelled:
        flags.append(((target >= 0) & (target < num_classes) | (target == IGNORE_INDEX)).all())
    if not flags or bool(torch.stack(flags).all()):
        return None
    for i, x in floats:
        if not torch.isfinite(x).all():
            name = names[i] if names is not None and i < len(names) else str(i)
            return (
                f"{what} holds NaN or infinite values in input {name!r} of shape {tuple(x.shape)}; expected finite "
                "numbers: check the data (and augment.mean / augment.std)"
            )
    label = label_beyond(target, num_classes) if labelled else None
    if label is not None:
        return (
            f"{what} has label {label}, but the model has {num_classes} classes (labels 0..{num_classes - 1}); set "
            "model.options.num_classes to the data's class count"
        )
    return None  # the sum of finite values overflowed


def check_batch(
    batch: Batch, *, names: tuple[str, ...] | None, num_classes: int | None, what: str, distributed: bool
) -> None:
    """BatchError saying what is wrong with the batch (:func:`batch_problem`). ``distributed``: every process
    agrees (one all-reduce more), so that one process's bad batch stops all of them instead of leaving the others
    waiting in the next collective."""
    problem = batch_problem(batch, names=names, num_classes=num_classes, what=what)
    if distributed:
        flag = torch.tensor([float(problem is not None)], device=batch.target.device)
        if all_reduce_sum(flag).item() and problem is None:
            problem = f"{what} of another process failed the batch check (its message says why); stopping too"
    if problem is not None:
        raise BatchError(problem)


def split_batch(batch: Any, *, padded: bool, inputs: tuple[str, ...] | None, device: torch.device) -> Batch:
    """A collated batch -> the model's arguments (for its declared ``inputs``) and the target, on ``device``."""
    if not isinstance(batch, tuple | list) or len(batch) < 2:
        raise TypeError(f"a batch must be (input, target, *extra), got {type(batch).__name__}")
    batch = _to(batch, device)
    if padded:
        data, mask, target, *extra = batch
        if isinstance(data, tuple):  # a pair: model(ids_a, ids_b), which derive their masks from the padding ids
            return Batch(data, target)
    else:
        (data, target, *extra), mask = batch, None
    data = data if isinstance(data, tuple) else (data,)
    return Batch(_arguments(data, mask, extra, inputs), target)
