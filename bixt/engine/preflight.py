"""The checks a run makes before it writes anything, beyond the config's own (``RunConfig.check``): the batch over
the processes, the precision on the device, and two items of real data through the augmentation and the model."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from bixt.engine.augment import BatchAugment
from bixt.engine.config import ConfigError, RunConfig
from bixt.engine.distributed import DistInfo
from bixt.engine.tasks import Batch, declared_inputs, get_task, label_beyond, split_batch


def check_config(config: RunConfig, info: DistInfo, device: torch.device) -> int:
    """The config's own checks, and those of its batch over ``info``'s processes and its precision on ``device``;
    returns the per-process micro-batch size."""
    config.check()
    per_step = info.world_size * config.grad_accum_steps
    if config.batch_size % per_step:
        raise ConfigError(
            f"batch_size {config.batch_size} (global) is not divisible by {info.world_size} process(es) x "
            f"{config.grad_accum_steps} accumulation step(s) = {per_step}"
        )
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device (use bf16 on CPU)")
    return config.batch_size // per_step


def check_targets(config: RunConfig, logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> None:
    """The task's logits layout for ``target``, and integer ``labels`` (a whole batch's) the model has classes for
    (padding labels aside)."""
    task = get_task(config.task)
    ndim = len(task.logits_axes)
    if logits.ndim != ndim or target.ndim != ndim - 1:
        raise ConfigError(
            f"task {config.task!r} needs logits {task.layout} and labels with one dimension fewer; model "
            f"{config.model.name!r} gives {tuple(logits.shape)} on data {config.data.name!r} whose labels are "
            f"{tuple(target.shape)}: is the task right for this data and model?"
        )
    logits = task.at_target_size(logits.float(), target)
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ConfigError(f"task {config.task!r} needs integer labels; data {config.data.name!r} gives {target.dtype}")
    classes = logits.shape[task.class_dim]
    label = label_beyond(labels, classes)
    if label is not None:
        raise ConfigError(
            f"data {config.data.name!r} has label {label}, but model {config.model.name!r} has {classes} classes "
            f"(labels 0..{classes - 1}); set model.options.num_classes to the data's class count"
        )


def check_model_takes_data(
    model: nn.Module, loader: DataLoader, augment: BatchAugment | None, config: RunConfig, device: torch.device
) -> None:
    """Two items of the first evaluation batch through the augmentation and the model, before anything is written: a
    model that cannot take the data (image size against the tokenizer's stride, channels, sequence length), a task
    that does not fit it, or labels beyond the model's classes fail here as a ConfigError."""
    first = next(iter(loader), None)
    if first is None:  # an empty evaluation split: nothing to check against
        return
    padded = config.data.collate == "padded"
    batch = split_batch(first, padded=padded, inputs=declared_inputs(model), device=device)
    labels = batch.target  # the whole batch's labels are checked against the classes: cheap, and more of them
    two = tuple(x[:2] if x is not None else None for x in batch.inputs)
    batch = Batch(two, batch.target[:2])  # two items say as much as a whole batch
    was_training = model.training
    model.eval()  # no dropout and no BatchNorm statistics: the check changes neither the RNG nor the weights
    try:
        with torch.no_grad():
            batch = augment(batch) if augment is not None else batch
            logits = model(*batch.inputs)
    except (ValueError, TypeError, RuntimeError, IndexError) as error:
        raise ConfigError(
            f"model {config.model.name!r} cannot take the data of {config.data.name!r} after augmentation: {error}"
        ) from error
    finally:
        model.train(was_training)
    check_targets(config, logits, batch.target, labels)
