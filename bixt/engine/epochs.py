"""The epochs of a checked run whose directory exists: train, evaluate, log, checkpoint, stop when asked.

:class:`Epochs` holds what the loop shares between its steps (the model, the optimizer, the progress, the last and
best checkpoints); ``run()`` goes from ``progress`` to the end of the schedule or ``max_steps``. A SIGINT / SIGTERM
ends it at a step boundary with a checkpoint (TrainingInterrupted).
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from bixt.engine.augment import BatchAugment
from bixt.engine.checkpoint import Progress, save_checkpoint
from bixt.engine.config import RunConfig
from bixt.engine.distributed import DistInfo, ResumableDistributedSampler, all_reduce_sum
from bixt.engine.interrupt import StopRequests, TrainingInterrupted
from bixt.engine.metric_log import MetricLog
from bixt.engine.train import EvalSettings, StepSettings, evaluate, train_one_epoch
from bixt.fileio import atomic_write
from bixt.layers.attention_paths import auto_choices, clear_auto_choices
from bixt.precision import PrecisionChoice

KERNELS_NAME = "kernels.json"  # what precision and attention paths the automatic rules chose


def resume_command(run_dir: Path) -> str:
    return f"bixt train --resume {run_dir}"


class _MaxStepsReached(Exception):
    """Raised after the step that completes ``max_steps`` optimizer steps."""


@dataclass
class RunParts:
    """What a checked run trains with, built (bixt.engine.run) before anything is written."""

    model: nn.Module
    precision: PrecisionChoice
    train_loader: DataLoader
    train_sampler: ResumableDistributedSampler
    eval_loader: DataLoader
    augments: tuple[BatchAugment | None, BatchAugment | None]  # training, evaluation
    micro_batch: int
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    ema: AveragedModel | None


@dataclass
class Epochs:
    """One run's training loop; ``parts.model`` is the bare model (checkpointed, evaluated), ``train_model`` what
    trains (the same model, or wrapped in DDP / torch.compile)."""

    config: RunConfig
    run_dir: Path
    info: DistInfo
    parts: RunParts
    train_model: nn.Module
    settings: StepSettings
    eval_settings: EvalSettings
    progress: Progress
    log: MetricLog
    primary: str  # the metric that picks the best checkpoint
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    requests: StopRequests = field(default_factory=StopRequests)  # SIGINT / SIGTERM, read at step boundaries

    def run(self) -> None:
        """Train to the end of the schedule (or ``max_steps``), evaluating and checkpointing as the config says."""
        config, progress = self.config, self.progress
        clear_auto_choices()  # this run's choices only
        with self.requests:
            try:
                for epoch in range(progress.epoch, config.schedule.epochs):
                    self._epoch(epoch)
            except _MaxStepsReached:
                # A short run: evaluate where it stopped, so that it ends like any run with figures and a checkpoint.
                self.checkpoint(self.evaluate_and_log(round(progress.step / self.parts.steps_per_epoch, 4)))

    def _epoch(self, epoch: int) -> None:
        config, progress, parts = self.config, self.progress, self.parts
        progress.epoch = epoch
        parts.train_sampler.set_epoch(epoch, start=progress.batch_in_epoch * parts.micro_batch)
        parts.train_loader.generator.manual_seed(config.seed + epoch)
        train_one_epoch(
            self.train_model,
            parts.train_loader,
            parts.optimizer,
            self.settings,
            progress,
            log=self.log,
            on_step=self.after_step,
        )
        if self.info.is_main:
            self._write_kernels()
        progress.epoch, progress.batch_in_epoch = epoch + 1, 0
        is_best = False
        if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.schedule.epochs:
            is_best = self.evaluate_and_log(float(epoch + 1))
        self.checkpoint(is_best)
        self.stop_if_requested(saved=True)

    def checkpoint(self, is_best: bool = False) -> None:
        if not self.info.is_main:
            return
        self.last_checkpoint = save_checkpoint(
            self.run_dir,
            model=self.parts.model,
            optimizer=self.parts.optimizer,
            progress=self.progress,
            scaler=self.settings.scaler,
            ema=self.settings.ema,
            is_best=is_best,
            keep=self.config.keep_checkpoints,
        )
        if is_best:
            self.best_checkpoint = self.last_checkpoint

    def stop_if_requested(self, *, saved: bool) -> None:
        """Every process stops at the same step when any of them got SIGINT / SIGTERM, with a checkpoint."""
        flag = torch.tensor([float(self.requests.signum or 0)], device=self.settings.device)
        signum = int(all_reduce_sum(flag).item()) if self.info.enabled else int(flag.item())
        if not signum:
            return
        if not saved:
            self.checkpoint()
        signum = self.requests.signum or signal.SIGTERM  # the ranks that got no signal stop with their peers
        last = str(self.last_checkpoint) if self.last_checkpoint else None
        raise TrainingInterrupted(signum, self.progress.step, last, resume_command(self.run_dir))

    def after_step(self) -> None:
        every = self.config.checkpoint_every_steps
        saved = every is not None and self.progress.step % every == 0
        if saved:
            self.checkpoint()
        self.stop_if_requested(saved=saved)
        if self.config.max_steps is not None and self.progress.step >= self.config.max_steps:
            raise _MaxStepsReached

    def evaluate_and_log(self, epoch: float) -> bool:
        """Evaluate, log and remember the result; returns whether it is the best so far."""
        progress, ema = self.progress, self.settings.ema
        loader = self.parts.eval_loader
        metrics = evaluate(self.parts.model, loader, self.eval_settings)
        if ema is not None:
            metrics |= {f"ema_{k}": v for k, v in evaluate(ema.module, loader, self.eval_settings).items()}
        self.log.write("eval", step=progress.step, epoch=epoch, **metrics)
        is_best = progress.best_value is None or metrics[self.primary] > progress.best_value
        if is_best:
            progress.best_value, progress.best_step = metrics[self.primary], progress.step
        progress.last_eval, progress.last_eval_step = metrics, progress.step
        if self.info.is_main:
            print(f"epoch {epoch:g}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
        return is_best

    def _write_kernels(self) -> None:
        """What the run's automatic choices picked on this machine: precision (and why), and each attention call's
        path under ``auto`` (`bixt.layers.attention_paths.auto_choices`), for the record beside config.yaml."""
        record = {
            "precision": self.parts.precision.precision,
            "precision_requested": self.parts.precision.requested,
            "precision_reason": self.parts.precision.reason,
            "attention_auto": auto_choices(),
        }
        atomic_write(self.run_dir / KERNELS_NAME, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
