"""A whole training run: check the config, build everything, train and evaluate epoch by epoch, checkpoint.

:func:`fit` is the programmatic entry point behind ``bixt train``. Everything that can be wrong with a config
(batch not divisible over processes, unknown model or model option, missing or damaged data, a device that is not
there, a model that cannot take the data, an unsafe change on resume) raises ConfigError before the run directory
is made or touched. SIGINT / SIGTERM end the run at a step boundary with a checkpoint (``engine.interrupt``). The
engine draws no figures: a caller that wants the learning curve passes ``learning_curve`` (``bixt train`` passes
``bixt.analysis.plots.plot_run_curve``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from bixt.engine import resume
from bixt.engine.builders import (
    build_augment,
    build_ema,
    build_model,
    init_model_from,
    load_split,
    make_loader,
    resolve_device,
    resolve_run_precision,
    resolve_stats,
)
from bixt.engine.checkpoint import (
    CHECKPOINTS,
    Progress,
    load_training_state,
    load_weights,
    remove_partial_checkpoints,
    set_rng_state,
)
from bixt.engine.compiling import CompiledWithFallback
from bixt.engine.config import ConfigError, RunConfig, dump_config
from bixt.engine.distributed import DistInfo, broadcast_string, env_info, init_distributed
from bixt.engine.epochs import Epochs, RunParts, resume_command
from bixt.engine.metric_log import MetricLog
from bixt.engine.optim import build_optimizer
from bixt.engine.preflight import check_config, check_model_takes_data
from bixt.engine.run_dir import RUN_CONFIG_NAME, RunLock, check_output_dir, check_run_name_free, create_run_dir
from bixt.engine.schedule import cosine_lr
from bixt.engine.tasks import Task, declared_inputs, get_task
from bixt.engine.train import EvalSettings, NonFiniteLossError, StepSettings
from bixt.fileio import atomic_write
from bixt.layers.attention_paths import attention_path, get_attention_path
from bixt.layers.mlp import get_mlp_memory, mlp_memory
from bixt.run_metrics import METRICS_NAME

# Draws a run's learning curve: (run directory, primary metric, (step, epoch) where a non-finite loss stopped the run
# or None) -> the figure's path.
LearningCurve = Callable[[Path, str, "tuple[int, float] | None"], Path]


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]  # the final evaluation
    best_value: float | None  # best primary metric over the run
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    metrics_path: Path
    plot_path: Path | None  # None: no learning_curve was passed


class RunFinishedError(ConfigError):
    """A resume of a run that has already done all its steps: nothing to do."""

    def __init__(self, run_dir: Path, progress: Progress, config: RunConfig) -> None:
        limit = f"max_steps {config.max_steps}" if config.max_steps is not None else "none left"
        super().__init__(
            f"run {run_dir} has already finished: {progress.epoch} of {config.schedule.epochs} epochs, "
            f"{progress.step} steps ({limit}); nothing to do. To train it further, resume with more epochs: "
            f"`{resume_command(run_dir)} --schedule.epochs {config.schedule.epochs + 1}`"
        )


def fit(
    config: RunConfig,
    *,
    train_set: Dataset | None = None,
    eval_set: Dataset | None = None,
    name_hint: str | None = None,
    learning_curve: LearningCurve | None = None,
) -> RunResult:
    """Train and evaluate as ``config`` says; returns where everything went.

    ``train_set`` / ``eval_set`` replace the recipe's registry data set (your own data, or tiny sets in tests).
    Under torchrun each process calls this; rank 0 alone writes logs and checkpoints (and draws ``learning_curve``).
    With ``config.resume``, the config must equal the run's saved one except for the keys of
    ``resume.SAFE_ON_RESUME``. SIGINT / SIGTERM stop at the next step with a checkpoint (TrainingInterrupted).
    Nothing is written before every check has passed.
    """
    info = env_info()
    device = resolve_device(config, info)
    micro_batch = check_config(config, info, device)
    config, plan, in_place = _check_destination(config)  # read-only, on every process alike: all stop together
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    config, parts = _build(config, info, device, micro_batch, train_set, eval_set, fresh=plan is None)
    progress, rng = _restore(parts, plan.checkpoint if plan is not None else None)
    steps_total = parts.steps_per_epoch * config.schedule.epochs
    if plan is not None and progress.step >= min(steps_total, config.max_steps or steps_total):
        raise RunFinishedError(plan.run_dir, progress, config)

    if config.attention is None:  # recorded, so that the saved config says which path the run trained with
        config = dataclasses.replace(config, attention=get_attention_path())
    if config.mlp_memory is None:  # likewise
        config = dataclasses.replace(config, mlp_memory=get_mlp_memory())
    # likewise: how many processes trained (`processes: auto` resolved, or torchrun's own count); a resume launches
    # as many
    config = dataclasses.replace(config, processes=info.world_size)
    # Every check has passed: from here on the run writes.
    config, run_dir, lock = _open_run_dir(config, info, plan, in_place, progress, name_hint)
    if rng is not None:
        set_rng_state(rng)
    try:
        return _train(config, run_dir, info, device, parts, progress, plan, learning_curve)
    finally:
        if lock is not None:
            lock.release()


def _check_destination(config: RunConfig) -> tuple[RunConfig, resume.ResumePlan | None, bool]:
    """Where the run goes: the resume plan (None: a new run) and whether it continues in its own directory."""
    check_output_dir(config.output_dir)
    plan = resume.plan(config) if config.resume is not None else None
    if plan is not None and plan.saved is not None and config.precision == "auto":
        config = dataclasses.replace(config, precision=plan.saved.precision)  # what the checkpoints trained in
    in_place = plan is not None and config.run_name is None
    if config.run_name is not None:
        target = Path(config.output_dir) / config.run_name
        if not (plan is not None and target.resolve() == plan.run_dir):
            check_run_name_free(target)
        else:
            in_place = True
    return config, plan, in_place


def _build(
    config: RunConfig,
    info: DistInfo,
    device: torch.device,
    micro_batch: int,
    train_set: Dataset | None,
    eval_set: Dataset | None,
    *,
    fresh: bool,
) -> tuple[RunConfig, RunParts]:
    """The model, the data and the optimizer; ``config`` comes back with its precision and normalisation statistics
    resolved, so that the saved config evaluates exactly like training did. A ``fresh`` run (no resume) starts from
    ``model.init_from`` when the recipe names one."""
    torch.manual_seed(config.seed)  # identical initial weights on every process
    model = build_model(config).to(device)
    if fresh and config.model.init_from is not None:
        loaded = init_model_from(model, config, device)
        if info.is_main:
            print(loaded.describe(config.model.init_from), flush=True)
    precision = resolve_run_precision(config, device, model)
    if info.is_main:
        print(precision.describe(), flush=True)
    config = dataclasses.replace(config, precision=precision.precision)
    custom_data = train_set is not None
    if train_set is None:
        train_set = load_split(config, config.data.train_split, config.data.train_limit)
    if eval_set is None:
        eval_set = load_split(config, config.data.eval_split, config.data.eval_limit)
    config = resolve_stats(config, train_set, custom_data)
    num_classes = getattr(model, "num_classes", 0)
    augments = tuple(build_augment(config, train=t, num_classes=num_classes, device=device) for t in (True, False))

    init_distributed(info, device)
    train_loader, train_sampler = make_loader(train_set, config, info, train=True, batch_size=micro_batch)
    eval_loader, _ = make_loader(eval_set, config, info, train=False, batch_size=config.eval_batch_size or micro_batch)
    steps_per_epoch = train_sampler.num_samples // micro_batch // config.grad_accum_steps
    if steps_per_epoch < 1:
        raise ConfigError(
            f"the training set ({len(train_set)} items) is smaller than one global batch ({config.batch_size})"
        )
    check_model_takes_data(model, eval_loader, augments[1], config, device)
    parts = RunParts(
        model=model,
        precision=precision,
        train_loader=train_loader,
        train_sampler=train_sampler,
        eval_loader=eval_loader,
        augments=augments,
        micro_batch=micro_batch,
        steps_per_epoch=steps_per_epoch,
        optimizer=build_optimizer(model, config.optim),
        scaler=torch.amp.GradScaler("cuda") if config.precision == "fp16" else None,
        ema=build_ema(model, config.ema_decay),
    )
    return config, parts


def _restore(parts: RunParts, checkpoint: Path | None) -> tuple[Progress, dict | None]:
    """Weights, optimizer, scaler and EMA from a resume's checkpoint; its progress and RNG states (to be set once
    the run writes). A fresh run: progress from zero, no RNG state."""
    if checkpoint is None:
        return Progress(), None
    try:
        state = load_training_state(checkpoint)
        load_weights(parts.model, checkpoint)
        parts.optimizer.load_state_dict(state["optimizer"])
        if parts.scaler is not None and state["scaler"] is not None:
            parts.scaler.load_state_dict(state["scaler"])
        if parts.ema is not None:
            load_weights(parts.ema.module, checkpoint, ema=True)
            parts.ema.n_averaged.fill_(state["ema_n_averaged"])
    except (ValueError, FileNotFoundError, KeyError) as error:  # damaged files, or a checkpoint of another run
        raise ConfigError(f"cannot resume from {checkpoint}: {error}") from error
    return Progress(**state["progress"]), state["rng"]


def _open_run_dir(
    config: RunConfig,
    info: DistInfo,
    plan: resume.ResumePlan | None,
    in_place: bool,
    progress: Progress,
    name_hint: str | None,
) -> tuple[RunConfig, Path, RunLock | None]:
    """The run's directory, held by rank 0 (its lock), cleared of a killed save's leftovers, with the config (and a
    resume's record) written into it."""
    if plan is not None and in_place:
        run_dir = plan.run_dir
        if plan.saved is not None:
            # The run keeps its recorded name and place, and its config.yaml stays a recipe that starts it afresh.
            saved = plan.saved
            config = dataclasses.replace(
                config, run_name=saved.run_name, output_dir=saved.output_dir, resume=saved.resume
            )
    else:
        run_dir = _new_run_dir(config, info, name_hint)
    if not info.is_main:
        return config, run_dir, None
    lock = RunLock(run_dir).acquire()
    if in_place:
        remove_partial_checkpoints(run_dir)
    if plan is not None:
        resume.record(run_dir, plan, config, progress.step)
    atomic_write(run_dir / RUN_CONFIG_NAME, lambda tmp: Path(tmp).write_text(dump_config(config)))
    return config, run_dir, lock


def _new_run_dir(config: RunConfig, info: DistInfo, name_hint: str | None) -> Path:
    """Rank 0 creates the run directory exclusively (a taken default name gets a suffix) and tells the others."""
    run_dir = None
    if info.is_main:
        exact = config.run_name is not None
        name = config.run_name if exact else f"{name_hint or config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = str(create_run_dir(Path(config.output_dir), name, exact=exact))
    return Path(broadcast_string(run_dir))


def _lr_schedule(config: RunConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Optimizer step -> learning rate: the recipe's warm-up and cosine, per step or per epoch."""
    schedule = config.schedule

    def lr_at(step: int) -> float:
        epoch = step / steps_per_epoch
        return cosine_lr(
            float(int(epoch)) if schedule.per == "epoch" else epoch,
            base_lr=config.optim.lr,
            epochs=schedule.epochs,
            warmup_epochs=schedule.warmup_epochs,
            warmup_lr=schedule.warmup_lr,
            min_lr=schedule.min_lr,
        )

    return lr_at


def _train(
    config: RunConfig,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    parts: RunParts,
    progress: Progress,
    plan: resume.ResumePlan | None,
    learning_curve: LearningCurve | None,
) -> RunResult:
    """The epochs of a checked run whose directory exists, then its result; see :func:`fit`."""
    task = get_task(config.task)
    settings, eval_settings = _settings(config, info, device, parts, task)
    log = MetricLog(run_dir, enabled=info.is_main, tensorboard=config.tensorboard)
    if plan is not None:  # from its checkpoint's step, or from 0 for a run that stopped before its first one
        log.drop_after(progress.step)
    epochs = Epochs(
        config=config,
        run_dir=run_dir,
        info=info,
        parts=parts,
        train_model=_training_model(parts.model, config, info, device),
        settings=settings,
        eval_settings=eval_settings,
        progress=progress,
        log=log,
        primary=task.primary_metric,
        last_checkpoint=plan.checkpoint if plan is not None else None,
    )
    draw = learning_curve if learning_curve is not None and info.is_main else None
    try:
        with attention_path(config.attention), mlp_memory(config.mlp_memory):
            epochs.run()
    except NonFiniteLossError as error:
        error.last_checkpoint = str(epochs.last_checkpoint) if epochs.last_checkpoint is not None else None
        if draw is not None:  # the curve up to the failure is what one wants to look at now
            error.plot_path = str(draw(run_dir, task.primary_metric, (error.step, error.step / parts.steps_per_epoch)))
        raise
    finally:
        log.close()
    best_link = run_dir / CHECKPOINTS / "best"
    return RunResult(
        run_dir=run_dir,
        metrics=dict(progress.last_eval),
        best_value=progress.best_value,
        last_checkpoint=epochs.last_checkpoint,
        best_checkpoint=best_link.resolve() if best_link.exists() else epochs.best_checkpoint,
        metrics_path=run_dir / METRICS_NAME,
        plot_path=draw(run_dir, task.primary_metric, None) if draw is not None else None,
    )


def _training_model(model: nn.Module, config: RunConfig, info: DistInfo, device: torch.device) -> nn.Module:
    """What trains: the model, wrapped in DDP under torchrun and in torch.compile when asked."""
    if info.enabled:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return CompiledWithFallback(model) if config.compile else model


def _settings(
    config: RunConfig, info: DistInfo, device: torch.device, parts: RunParts, task: Task
) -> tuple[StepSettings, EvalSettings]:
    """How training steps and evaluations feed batches to the model, and what a step needs besides."""
    feed = dict(
        config=config,
        task=task,
        device=device,
        info=info,
        padded=config.data.collate == "padded",
        model_inputs=declared_inputs(parts.model),
        num_classes=getattr(parts.model, "num_classes", None),
    )
    training = StepSettings(
        **feed,
        augment=parts.augments[0],
        steps_per_epoch=parts.steps_per_epoch,
        lr_at=_lr_schedule(config, parts.steps_per_epoch),
        scaler=parts.scaler,
        ema=parts.ema,
    )
    return training, EvalSettings(**feed, augment=parts.augments[1])
