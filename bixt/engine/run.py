"""A whole training run: check the config, build everything, train and evaluate epoch by epoch, checkpoint, plot.

:func:`fit` is the programmatic entry point behind ``bixt train``. Everything that can be wrong with a config
(batch not divisible over processes, unknown model or model option, missing data, fp16 without a GPU) raises
ConfigError before the first step.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from bixt.engine.augment import BatchAugment
from bixt.engine.checkpoint import (
    CHECKPOINTS,
    Progress,
    load_training_state,
    load_weights,
    resolve_checkpoint,
    run_dir_of,
    save_checkpoint,
    set_rng_state,
)
from bixt.engine.compiling import CompiledWithFallback
from bixt.engine.config import ConfigError, RunConfig, dump_config
from bixt.engine.distributed import (
    DistInfo,
    ResumableDistributedSampler,
    ShardSampler,
    broadcast_string,
    env_info,
    init_distributed,
)
from bixt.engine.metric_log import METRICS_NAME, MetricLog
from bixt.engine.optim import build_optimizer
from bixt.engine.schedule import cosine_lr
from bixt.engine.tasks import PRIMARY_METRIC, Batch, split_batch, takes_mask
from bixt.engine.train import NonFiniteLossError, StepSettings, evaluate, train_one_epoch
from bixt.fileio import atomic_write
from bixt.layers.attend import auto_choices, clear_auto_choices
from bixt.precision import PrecisionChoice, matmul_width, resolve_precision

CONFIG_NAME = "config.yaml"
KERNELS_NAME = "kernels.json"  # what precision and attention paths the automatic rules chose
PLOT_NAME = "learning_curve.png"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]  # the final evaluation
    best_value: float | None  # best primary metric over the run
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    metrics_path: Path
    plot_path: Path | None


def resolve_device(config: RunConfig, info: DistInfo) -> torch.device:
    if config.device == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(config.device)


def check_config(config: RunConfig, info: DistInfo, device: torch.device) -> int:
    """Checks that need no model or data; returns the per-process micro-batch size."""
    per_step = info.world_size * config.grad_accum_steps
    if config.batch_size < 1 or config.grad_accum_steps < 1:
        raise ConfigError(
            f"batch_size and grad_accum_steps must be >= 1, got {config.batch_size}, {config.grad_accum_steps}"
        )
    if config.batch_size % per_step:
        raise ConfigError(
            f"batch_size {config.batch_size} (global) is not divisible by {info.world_size} process(es) x "
            f"{config.grad_accum_steps} accumulation step(s) = {per_step}"
        )
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device (use bf16 on CPU)")
    if config.schedule.epochs < 1 or not 0 <= config.schedule.warmup_epochs <= config.schedule.epochs:
        raise ConfigError(
            f"need schedule.epochs >= 1 and 0 <= warmup_epochs <= epochs, got {config.schedule.epochs} and "
            f"{config.schedule.warmup_epochs}"
        )
    for name in ("eval_every_epochs", "log_every_steps", "keep_checkpoints"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.ema_decay is not None and not 0 < config.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in (0, 1), got {config.ema_decay}")
    return config.batch_size // per_step


def build_model(config: RunConfig) -> nn.Module:
    from bixt.models.registry import create_model

    try:
        return create_model(config.model.name, **config.model.options)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"model {config.model.name!r}: {error}") from error


def load_split(config: RunConfig, split: str, limit: int | None) -> Dataset:
    """A split of the recipe's registry data set; a missing set is a ConfigError saying how to get it."""
    from bixt.data import load_dataset

    data = config.data
    try:
        return load_dataset(data.name, split, cache_dir=data.cache_dir, fetch=data.fetch, limit=limit, **data.options)
    except FileNotFoundError as error:
        raise ConfigError(
            f"data set {data.name!r} ({split}) is missing: {error}\n"
            f"fetch it with `bixt data fetch {data.name}` or set data.fetch=true"
        ) from error
    except (ValueError, TypeError) as error:
        raise ConfigError(f"data set {data.name!r} ({split}): {error}") from error


def make_loader(
    dataset: Dataset, config: RunConfig, info: DistInfo, *, train: bool, batch_size: int
) -> tuple[DataLoader, ResumableDistributedSampler | ShardSampler]:
    if train:
        sampler = ResumableDistributedSampler(dataset, info, shuffle=True, seed=config.seed)
    else:
        sampler = ShardSampler(dataset, info)
    if config.data.collate == "padded":
        from bixt.data.collate import collate_padded

        collate = collate_padded
    else:
        collate = default_collate
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train,
        collate_fn=collate,
        num_workers=config.data.num_workers,
        # Its own generator, so that making an iterator never draws from the global RNG (bit-exact resume).
        generator=torch.Generator().manual_seed(config.seed),
        persistent_workers=False,
    )
    return loader, sampler


def _resolve_stats(config: RunConfig, train_set: Dataset, custom_data: bool) -> RunConfig:
    """Fill in normalisation statistics, so that the saved config evaluates exactly like training did."""
    augment = config.augment
    if augment.image == "none" or (augment.mean is not None and augment.std is not None):
        return config
    from bixt.data.stats import compute_image_stats, normalisation_stats

    stats = (
        compute_image_stats(train_set) if custom_data else normalisation_stats(config.data.name, config.data.cache_dir)
    )
    augment = dataclasses.replace(augment, mean=tuple(stats["mean"]), std=tuple(stats["std"]))
    return dataclasses.replace(config, augment=augment)


def build_augment(config: RunConfig, *, train: bool, num_classes: int, device: torch.device) -> BatchAugment | None:
    a = config.augment
    active = a.image != "none" or a.pad > 0 or (train and (a.points or a.mixup_alpha > 0 or a.cutmix_alpha > 0))
    if not active:
        return None
    try:
        augment = BatchAugment(a, task=config.task, train=train, num_classes=num_classes, mean=a.mean, std=a.std)
    except ValueError as error:
        raise ConfigError(f"augment: {error}") from error
    return augment.to(device)


def _check_model_takes_data(
    model: nn.Module, loader: DataLoader, augment: BatchAugment | None, config: RunConfig, device: torch.device
) -> None:
    """One evaluation batch through the model, before anything is written: a model that cannot take the data
    (image size against the tokenizer's stride, channels, sequence length) fails here as a ConfigError."""
    first = next(iter(loader), None)
    if first is None:  # an empty evaluation split: nothing to check against
        return
    batch = split_batch(first, padded=config.data.collate == "padded", mask_to_model=takes_mask(model), device=device)
    batch = Batch(tuple(x[:2] for x in batch.inputs), batch.target[:2])  # two items say as much as a whole batch
    was_training = model.training
    model.eval()  # no dropout and no BatchNorm statistics: the check changes neither the RNG nor the weights
    try:
        with torch.no_grad():
            model(*(augment(batch) if augment is not None else batch).inputs)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ConfigError(
            f"model {config.model.name!r} cannot take the data of {config.data.name!r} after augmentation: {error}"
        ) from error
    finally:
        model.train(was_training)


def _resolve_precision(
    config: RunConfig, device: torch.device, info: DistInfo, model: nn.Module
) -> tuple[RunConfig, PrecisionChoice]:
    """``precision: auto`` -> what this device runs for `model`, reported once and kept in the saved config (so that
    `bixt eval` evaluates in the precision the run trained in)."""
    try:
        choice = resolve_precision(config.precision, device, width=matmul_width(model))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if info.is_main:
        print(choice.describe(), flush=True)
    return dataclasses.replace(config, precision=choice.precision), choice


def _write_kernels(run_dir: Path, precision: PrecisionChoice) -> None:
    """What the run's automatic choices picked on this machine: precision (and why), and each attention call's path
    under ``auto`` (`bixt.layers.attend.auto_choices`), for the record beside config.yaml."""
    record = {
        "precision": precision.precision,
        "precision_requested": precision.requested,
        "precision_reason": precision.reason,
        "attention_auto": auto_choices(),
    }
    atomic_write(run_dir / KERNELS_NAME, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


def _run_dir(config: RunConfig, info: DistInfo, name_hint: str | None) -> Path:
    if config.run_name is not None:
        run_dir = Path(config.output_dir) / config.run_name
    elif config.resume is not None:
        run_dir = run_dir_of(resolve_checkpoint(config.resume, prefer="last"))
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(config.output_dir) / f"{name_hint or config.model.name}-{stamp}"
    return Path(broadcast_string(str(run_dir) if info.is_main else None))


def fit(
    config: RunConfig,
    *,
    train_set: Dataset | None = None,
    eval_set: Dataset | None = None,
    name_hint: str | None = None,
) -> RunResult:
    """Train and evaluate as ``config`` says; returns where everything went.

    ``train_set`` / ``eval_set`` replace the recipe's registry data set (your own data, or tiny sets in tests).
    Under torchrun each process calls this; rank 0 alone writes logs and checkpoints.
    """
    info = env_info()
    device = resolve_device(config, info)
    micro_batch = check_config(config, info, device)
    resume_from = resolve_checkpoint(config.resume, prefer="last") if config.resume else None
    if config.threads is not None:
        torch.set_num_threads(config.threads)

    torch.manual_seed(config.seed)  # identical initial weights on every process
    model = build_model(config).to(device)
    config, precision = _resolve_precision(config, device, info, model)
    custom_data = train_set is not None
    train_set = (
        train_set if train_set is not None else load_split(config, config.data.train_split, config.data.train_limit)
    )
    eval_set = eval_set if eval_set is not None else load_split(config, config.data.eval_split, config.data.eval_limit)
    config = _resolve_stats(config, train_set, custom_data)
    num_classes = getattr(model, "num_classes", 0)
    train_augment = build_augment(config, train=True, num_classes=num_classes, device=device)
    eval_augment = build_augment(config, train=False, num_classes=num_classes, device=device)

    init_distributed(info, device)
    train_loader, train_sampler = make_loader(train_set, config, info, train=True, batch_size=micro_batch)
    eval_loader, _ = make_loader(eval_set, config, info, train=False, batch_size=config.eval_batch_size or micro_batch)
    steps_per_epoch = train_sampler.num_samples // micro_batch // config.grad_accum_steps
    if steps_per_epoch < 1:
        raise ConfigError(
            f"the training set ({len(train_set)} items) is smaller than one global batch ({config.batch_size})"
        )

    _check_model_takes_data(model, eval_loader, eval_augment, config, device)

    run_dir = _run_dir(config, info, name_hint)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / CONFIG_NAME, lambda tmp: Path(tmp).write_text(dump_config(config)))

    optimizer = build_optimizer(model, config.optim)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = None
    if config.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)

    progress = Progress()
    if resume_from is not None:
        state = load_training_state(resume_from)
        load_weights(model, resume_from)
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        if ema is not None:
            load_weights(ema.module, resume_from, ema=True)
            ema.n_averaged.fill_(state["ema_n_averaged"])
        progress = Progress(**state["progress"])
        set_rng_state(state["rng"])

    train_model = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = CompiledWithFallback(train_model)

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

    settings = StepSettings(
        config=config,
        device=device,
        info=info,
        steps_per_epoch=steps_per_epoch,
        lr_at=lr_at,
        padded=config.data.collate == "padded",
        mask_to_model=takes_mask(model),
        augment=train_augment,
        scaler=scaler,
        ema=ema,
    )
    eval_settings = dataclasses.replace(settings, augment=eval_augment)
    log = MetricLog(run_dir, enabled=info.is_main, tensorboard=config.tensorboard)
    if resume_from is not None:
        log.drop_after(progress.step)
    primary = PRIMARY_METRIC[config.task]
    last_checkpoint: Path | None = resume_from
    best_checkpoint: Path | None = None

    def checkpoint(is_best: bool = False) -> None:
        nonlocal last_checkpoint, best_checkpoint
        if info.is_main:
            last_checkpoint = save_checkpoint(
                run_dir,
                model=model,
                optimizer=optimizer,
                progress=progress,
                scaler=scaler,
                ema=ema,
                is_best=is_best,
                keep=config.keep_checkpoints,
            )
            best_checkpoint = last_checkpoint if is_best else best_checkpoint

    def step_checkpoint() -> None:
        every = config.checkpoint_every_steps
        if every is not None and progress.step % every == 0:
            checkpoint()

    metrics: dict[str, float] = dict(progress.last_eval)
    clear_auto_choices()  # this run's choices only
    try:
        for epoch in range(progress.epoch, schedule.epochs):
            progress.epoch = epoch
            train_sampler.set_epoch(epoch, start=progress.batch_in_epoch * micro_batch)
            train_loader.generator.manual_seed(config.seed + epoch)
            train_one_epoch(train_model, train_loader, optimizer, settings, progress, log=log, on_step=step_checkpoint)
            if info.is_main:
                _write_kernels(run_dir, precision)
            progress.epoch, progress.batch_in_epoch = epoch + 1, 0
            is_best = False
            if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == schedule.epochs:
                metrics = evaluate(model, eval_loader, eval_settings)
                if ema is not None:
                    metrics |= {f"ema_{k}": v for k, v in evaluate(ema.module, eval_loader, eval_settings).items()}
                log.write("eval", step=progress.step, epoch=float(epoch + 1), **metrics)
                is_best = progress.best_value is None or metrics[primary] > progress.best_value
                if is_best:
                    progress.best_value, progress.best_step = metrics[primary], progress.step
                progress.last_eval, progress.last_eval_step = metrics, progress.step
                if info.is_main:
                    print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
            checkpoint(is_best)
    except NonFiniteLossError as error:
        error.last_checkpoint = str(last_checkpoint) if last_checkpoint is not None else None
        raise
    finally:
        log.close()

    plot_path = None
    if info.is_main:
        from bixt.analysis.plots import plot_learning_curve

        plot_path = plot_learning_curve(run_dir / METRICS_NAME, run_dir / PLOT_NAME, primary=primary)
    best_link = run_dir / CHECKPOINTS / "best"
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        best_value=progress.best_value,
        last_checkpoint=last_checkpoint,
        best_checkpoint=best_link.resolve() if best_link.exists() else best_checkpoint,
        metrics_path=run_dir / METRICS_NAME,
        plot_path=plot_path,
    )
