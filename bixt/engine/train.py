"""The engine: one training epoch and one evaluation, as plain functions (the MAE / DeiT shape).

Everything an evaluation needs that is not the model or the data comes in an :class:`EvalSettings` (the task, how
batches become the model's arguments, precision); a training step's :class:`StepSettings` adds the learning-rate
schedule, the grad scaler and the EMA. What the loop has done so far lives in a
:class:`~bixt.engine.checkpoint.Progress`, updated in place, so that a checkpoint written from the ``on_step``
callback can resume exactly here. Every batch is checked on the way in (``tasks.check_batch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bixt.engine.augment import BatchAugment
from bixt.engine.checkpoint import Progress
from bixt.engine.config import RunConfig
from bixt.engine.distributed import DistInfo, all_reduce_sum, broadcast_buffers
from bixt.engine.metric_log import MetricLog
from bixt.engine.metrics import MeanLoss
from bixt.engine.progress import EpochProgress
from bixt.engine.tasks import Batch, Task, check_batch, compute_loss, split_batch
from bixt.precision import autocast_for


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training stops instead of skipping the batch."""

    def __init__(self, value: float, progress: Progress) -> None:
        super().__init__(value, progress.step + 1)
        self.value, self.step, self.epoch = value, progress.step + 1, progress.epoch + 1
        self.micro_batch = progress.batch_in_epoch + 1
        # filled in by the run, which knows its checkpoints and its learning-curve plot
        self.last_checkpoint: str | None = None
        self.plot_path: str | None = None

    def __str__(self) -> str:
        kept = f"the last good checkpoint is kept: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint"
        plot = f"; learning curve up to here: {self.plot_path}" if self.plot_path else ""
        return (
            f"non-finite loss ({self.value}) at step {self.step} (epoch {self.epoch}, micro-batch "
            f"{self.micro_batch} of the epoch); training stopped, {kept}{plot}"
        )


@dataclass(kw_only=True)
class EvalSettings:
    """What evaluating needs besides the model and the data."""

    config: RunConfig  # precision and the loss's options
    task: Task
    device: torch.device
    info: DistInfo
    padded: bool  # batches come from the padded collate: (input, mask, target, *extra)
    model_inputs: tuple[str, ...] | None  # the model's declared forward arguments (tasks.declared_inputs)
    num_classes: int | None  # the model's; integer labels are checked against it (None: not checked)
    augment: BatchAugment | None = None


@dataclass(kw_only=True)
class StepSettings(EvalSettings):
    """What a training step needs besides the model, the data and the optimizer."""

    steps_per_epoch: int  # optimizer steps per epoch
    lr_at: Callable[[int], float]  # optimizer step -> learning rate
    scaler: torch.amp.GradScaler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None


def autocast(config: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or GPU, fp16 on GPU; a no-op for fp32; ``auto`` resolved for the device."""
    return autocast_for(config.precision, device)


def _prepare(raw: Any, settings: EvalSettings, what: str) -> Batch:
    """A loader's batch -> checked model inputs and target, augmented. The check (``tasks.check_batch``: finite
    inputs, labels within the classes) runs before the augmentation, whose mixup would fail on a label beyond the
    classes. Its cost on the main job (configs/fashion-mnist.yaml, batches of 256 fp32 1x28x28 images): 55 us per
    batch on one AMD EPYC (Zen 4) core, against 0.25 s per training step there (0.02 %), measured with
      python -m timeit -s "import torch; from bixt.engine.tasks import Batch, check_batch; torch.set_num_threads(1);
        b = Batch((torch.rand(256, 1, 28, 28),), torch.randint(0, 10, (256,)))" \
        "check_batch(b, names=('images',), num_classes=10, what='x', distributed=False)"
    and `bixt train -c configs/fashion-mnist.yaml --max_steps 40 --threads 1 --log_every_steps 10` (the times in
    its metrics.jsonl)."""
    batch = split_batch(raw, padded=settings.padded, inputs=settings.model_inputs, device=settings.device)
    names, distributed = settings.model_inputs, settings.info.enabled
    check_batch(batch, names=names, num_classes=settings.num_classes, what=what, distributed=distributed)
    return settings.augment(batch) if settings.augment is not None else batch


def _is_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Every process agrees, so that one rank's NaN stops all ranks before the gradient all-reduce."""
    bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=loss.device)
    return all_reduce_sum(bad).item() == 0 if info.enabled else bad.item() == 0


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    settings: StepSettings,
    progress: Progress,
    *,
    log: MetricLog,
    on_step: Callable[[], None] | None = None,
) -> float:
    """Train until the epoch's ``steps_per_epoch`` optimizer steps are done; returns the epoch's mean loss.

    Starts ``progress.batch_in_epoch`` micro-batches into the epoch (the loader's sampler has skipped them), steps
    the optimizer every ``grad_accum_steps`` micro-batches with the learning rate of that step, and calls
    ``on_step()`` after each optimizer step. Raises NonFiniteLossError on a NaN / inf loss.
    """
    config, device = settings.config, settings.device
    accum = config.grad_accum_steps
    micro_total = settings.steps_per_epoch * accum
    model.train()
    console = EpochProgress(
        epoch=progress.epoch,
        epochs=config.schedule.epochs,
        steps_per_epoch=settings.steps_per_epoch,
        initial=progress.batch_in_epoch // accum,
        samples_per_step=config.batch_size,
        enabled=config.progress and settings.info.is_main,
        every_steps=config.log_every_steps,
    )
    step_loss, window_loss, window_steps, epoch_loss, epoch_steps = 0.0, 0.0, 0, 0.0, 0
    for raw in loader:
        if progress.batch_in_epoch >= micro_total:
            break
        batch = _prepare(raw, settings, f"training batch {progress.batch_in_epoch + 1} of epoch {progress.epoch + 1}")
        first_micro = progress.batch_in_epoch % accum == 0
        last_micro = (progress.batch_in_epoch + 1) % accum == 0
        if first_micro:
            for group in optimizer.param_groups:
                group["lr"] = settings.lr_at(progress.step)
        # DDP all-reduces gradients on every backward unless told not to: only the last micro-batch syncs.
        sync = contextlib.nullcontext() if last_micro or not settings.info.enabled else model.no_sync()
        with sync:
            with autocast(config, device):
                loss = compute_loss(settings.task, config, model(*batch.inputs), batch.target)
            if not _is_finite(loss, settings.info):
                raise NonFiniteLossError(loss.item(), progress)
            scaled = loss / accum
            (settings.scaler.scale(scaled) if settings.scaler is not None else scaled).backward()
        progress.batch_in_epoch += 1
        step_loss += loss.item() / accum
        if not last_micro:
            continue
        _optimizer_step(model, optimizer, settings)
        progress.step += 1
        window_loss, window_steps = window_loss + step_loss, window_steps + 1
        epoch_loss, epoch_steps = epoch_loss + step_loss, epoch_steps + 1
        lr = optimizer.param_groups[0]["lr"]
        console.step(step_loss, lr)
        step_loss = 0.0
        if progress.step % config.log_every_steps == 0 or progress.batch_in_epoch == micro_total:
            mean = all_reduce_sum(torch.tensor([window_loss / window_steps], device=device)).item()
            log.write(
                "train",
                step=progress.step,
                epoch=progress.step / settings.steps_per_epoch,
                loss=mean / settings.info.world_size,
                lr=lr,
            )
            window_loss, window_steps = 0.0, 0
        if on_step is not None:
            on_step()
    console.close()
    return epoch_loss / max(epoch_steps, 1)


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, settings: StepSettings) -> None:
    clip, scaler = settings.config.optim.clip_grad_norm, settings.scaler
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if settings.ema is not None:
        settings.ema.update_parameters(model)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, settings: EvalSettings) -> dict[str, float]:
    """Metrics of ``model`` over ``loader`` (this process's shard), summed over processes: loss plus the task's."""
    config, device, task = settings.config, settings.device, settings.task
    broadcast_buffers(model)
    model.eval()
    metrics, mean_loss = None, MeanLoss()
    for index, raw in enumerate(loader, 1):
        batch = _prepare(raw, settings, f"evaluation batch {index}")
        with autocast(config, device):
            logits = model(*batch.inputs)
            loss = compute_loss(task, config, logits, batch.target, training=False)
        logits = task.at_target_size(logits.float(), batch.target)
        if metrics is None:  # the class count comes from the model's output
            metrics = task.metrics(logits.shape[task.class_dim])
        for metric in metrics:
            metric.update(logits, batch.target)
        mean_loss.update(loss.float(), batch.size)
    results: dict[str, float] = {}
    for metric in [*(metrics or []), mean_loss]:
        metric.state = all_reduce_sum(metric.state.to(device)).cpu()
        results.update(metric.compute())
    return results
