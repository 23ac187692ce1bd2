"""A whole training run: check the config, build everything, train and evaluate epoch by epoch, checkpoint, plot.

:func:`fit` is the programmatic entry point behind ``bixt train``. Everything that can be wrong with a config
(batch not divisible over processes, unknown model or model option, missing or damaged data, a device that is not
there, a model that cannot take the data, an unsafe change on resume) raises ConfigError before the run directory
is made or touched. SIGINT / SIGTERM end the run at a step boundary with a checkpoint (``engine.interrupt``).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from bixt.engine import resume
from bixt.engine.augment import BatchAugment
from bixt.engine.checkpoint import (
    CHECKPOINTS,
    Progress,
    load_training_state,
    load_weights,
    remove_partial_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from bixt.engine.config import ConfigError, RunConfig, dump_config
from bixt.engine.distributed import (
    DistInfo,
    ResumableDistributedSampler,
    ShardSampler,
    all_reduce_sum,
    broadcast_string,
    env_info,
    init_distributed,
)
from bixt.engine.interrupt import StopRequests, TrainingInterrupted
from bixt.engine.metric_log import METRICS_NAME, MetricLog
from bixt.engine.metrics import IGNORE_INDEX
from bixt.engine.optim import build_optimizer
from bixt.engine.run_dir import CONFIG_NAME, RunLock, check_output_dir, check_run_name_free, create_run_dir
from bixt.engine.schedule import cosine_lr
from bixt.engine.tasks import PRIMARY_METRIC, Batch, dense_logits, split_batch, takes_mask
from bixt.engine.train import NonFiniteLossError, StepSettings, evaluate, train_one_epoch
from bixt.fileio import atomic_write

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


_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(config: RunConfig, info: DistInfo) -> torch.device:
    """The device of ``config.device``; ConfigError for a name torch does not know or a device that is not there."""
    if config.device == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(config.device)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(
            f"device {config.device!r} is not a device name (expected auto, cpu, cuda, cuda:N, mps or xpu)"
        ) from error
    if device.type not in _DEVICE_TYPES:
        raise ConfigError(f"device {config.device!r}: training runs on {', '.join(_DEVICE_TYPES)} (or auto)")
    backend = getattr(torch, device.type)
    if device.type != "cpu" and not backend.is_available():
        raise ConfigError(
            f"device {config.device!r} asked for, but this torch ({torch.__version__}) sees none; "
            "use --device cpu or --device auto"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {config.device!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    return device


def _check_ranges(config: RunConfig) -> None:
    """Numbers whose sign or range makes a run meaningless, named with the range they need."""
    o, s, d, a = config.optim, config.schedule, config.data, config.augment
    at_least_one = {
        "eval_every_epochs": config.eval_every_epochs,
        "log_every_steps": config.log_every_steps,
        "keep_checkpoints": config.keep_checkpoints,
        "eval_batch_size": config.eval_batch_size,
        "max_steps": config.max_steps,
        "checkpoint_every_steps": config.checkpoint_every_steps,
        "threads": config.threads,
        "data.train_limit": d.train_limit,
        "data.eval_limit": d.eval_limit,
        "augment.image_size": a.image_size,
    }
    for name, value in at_least_one.items():
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1 (or left unset), got {value}")
    at_least_zero = {
        "optim.weight_decay": o.weight_decay,
        "schedule.warmup_lr": s.warmup_lr,
        "schedule.min_lr": s.min_lr,
        "data.num_workers": d.num_workers,
        "augment.pad": a.pad,
        "augment.mixup_alpha": a.mixup_alpha,
        "augment.cutmix_alpha": a.cutmix_alpha,
    }
    for name, value in at_least_zero.items():
        if not value >= 0:  # also catches NaN
            raise ConfigError(f"{name} must be >= 0, got {value}")
    if not o.lr > 0 or not o.eps > 0 or (o.clip_grad_norm is not None and not o.clip_grad_norm > 0):
        raise ConfigError(
            f"optim.lr, optim.eps and optim.clip_grad_norm must be > 0, got {o.lr}, {o.eps}, {o.clip_grad_norm}"
        )
    if not all(0 <= beta < 1 for beta in o.betas):
        raise ConfigError(f"optim.betas must be in [0, 1), got {o.betas}")
    if not 0 <= a.label_smoothing < 1:
        raise ConfigError(f"augment.label_smoothing must be in [0, 1), got {a.label_smoothing}")


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
    _check_ranges(config)
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
    from bixt.data.registry import dataset_info
    from bixt.data.stats import compute_image_stats, normalisation_stats

    # A user's files (image-folder with root=) have no cache entry that names them: their statistics are computed.
    own_files = custom_data or dataset_info(config.data.name).kind == "user"
    stats = (
        compute_image_stats(train_set) if own_files else normalisation_stats(config.data.name, config.data.cache_dir)
    )
    augment = dataclasses.replace(augment, mean=tuple(stats["mean"]), std=tuple(stats["std"]))
    return dataclasses.replace(config, augment=augment)


def build_augment(config: RunConfig, *, train: bool, num_classes: int, device: torch.device) -> BatchAugment | None:
    a = config.augment
    image_processing = a.image != "none" or a.pad > 0 or a.resize is not None
    active = image_processing or (train and (a.points or a.mixup_alpha > 0 or a.cutmix_alpha > 0))
    if not active:
        return None
    try:
        augment = BatchAugment(a, task=config.task, train=train, num_classes=num_classes, mean=a.mean, std=a.std)
    except ValueError as error:
        raise ConfigError(f"augment: {error}") from error
    return augment.to(device)


_LOGITS_LAYOUT = {
    "classification": (2, "(batch, classes)"),
    "retrieval": (2, "(batch, classes)"),
    "semantic_segmentation": (4, "(batch, classes, height, width)"),
    "part_segmentation": (3, "(batch, points, classes)"),
}


def _check_targets(config: RunConfig, logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> None:
    """The task's logits layout for ``target``, and integer ``labels`` (a whole batch's) the model has classes for
    (padding labels aside)."""
    ndim, layout = _LOGITS_LAYOUT[config.task]
    if logits.ndim != ndim or target.ndim != ndim - 1:
        raise ConfigError(
            f"task {config.task!r} needs logits {layout} and labels with one dimension fewer; model "
            f"{config.model.name!r} gives {tuple(logits.shape)} on data {config.data.name!r} whose labels are "
            f"{tuple(target.shape)}: is the task right for this data and model?"
        )
    logits = dense_logits(config.task, logits.float(), target)  # segmentation heads may predict at token size
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ConfigError(f"task {config.task!r} needs integer labels; data {config.data.name!r} gives {target.dtype}")
    classes = logits.shape[-1 if config.task == "part_segmentation" else 1]
    real = labels[labels != IGNORE_INDEX]
    if real.numel() and (real.min() < 0 or real.max() >= classes):
        raise ConfigError(
            f"data {config.data.name!r} has label {int(real.max() if real.max() >= classes else real.min())}, but "
            f"model {config.model.name!r} has {classes} classes (labels 0..{classes - 1}); set "
            f"model.options.num_classes to the data's class count"
        )


def _check_model_takes_data(
    model: nn.Module, loader: DataLoader, augment: BatchAugment | None, config: RunConfig, device: torch.device
) -> None:
    """Two items of the first evaluation batch through the augmentation and the model, before anything is written: a
    model that cannot take the data (image size against the tokenizer's stride, channels, sequence length), a task
    that does not fit it, or labels beyond the model's classes fail here as a ConfigError."""
    first = next(iter(loader), None)
    if first is None:  # an empty evaluation split: nothing to check against
        return
    batch = split_batch(first, padded=config.data.collate == "padded", mask_to_model=takes_mask(model), device=device)
    labels = batch.target  # the whole batch's labels are checked against the classes: cheap, and more of them
    batch = Batch(tuple(x[:2] for x in batch.inputs), batch.target[:2])  # two items say as much as a whole batch
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
    _check_targets(config, logits, batch.target, labels)


def _new_run_dir(config: RunConfig, info: DistInfo, name_hint: str | None) -> Path:
    """Rank 0 creates the run directory exclusively (a taken default name gets a suffix) and tells the others."""
    run_dir = None
    if info.is_main:
        exact = config.run_name is not None
        name = config.run_name if exact else f"{name_hint or config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = str(create_run_dir(Path(config.output_dir), name, exact=exact))
    return Path(broadcast_string(run_dir))


def _resume_command(run_dir: Path) -> str:
    return f"bixt train --resume {run_dir}"


class _MaxStepsReached(Exception):
    """Raised from the step callback when ``max_steps`` optimizer steps are done."""


def _plot(run_dir: Path, primary: str, *, stopped_at: tuple[int, float] | None = None) -> Path:
    from bixt.analysis.plots import plot_learning_curve

    return plot_learning_curve(run_dir / METRICS_NAME, run_dir / PLOT_NAME, primary=primary, stopped_at=stopped_at)


def fit(
    config: RunConfig,
    *,
    train_set: Dataset | None = None,
    eval_set: Dataset | None = None,
    name_hint: str | None = None,
) -> RunResult:
    """Train and evaluate as ``config`` says; returns where everything went.

    ``train_set`` / ``eval_set`` replace the recipe's registry data set (your own data, or tiny sets in tests).
    Under torchrun each process calls this; rank 0 alone writes logs and checkpoints. With ``config.resume``, the
    config must equal the run's saved one except for the keys of ``resume.SAFE_ON_RESUME``. SIGINT / SIGTERM stop
    at the next step with a checkpoint (TrainingInterrupted). Nothing is written before every check has passed.
    """
    info = env_info()
    device = resolve_device(config, info)
    micro_batch = check_config(config, info, device)
    # Read-only checks, on every process alike, so that all of them stop together.
    check_output_dir(config.output_dir)
    plan = resume.plan(config) if config.resume is not None else None
    resume_from = plan.checkpoint if plan is not None else None
    in_place = plan is not None and config.run_name is None
    if config.run_name is not None:
        target = Path(config.output_dir) / config.run_name
        if not (plan is not None and target.resolve() == plan.run_dir):
            check_run_name_free(target)
        else:
            in_place = True
    if config.threads is not None:
        torch.set_num_threads(config.threads)

    torch.manual_seed(config.seed)  # identical initial weights on every process
    model = build_model(config).to(device)
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

    optimizer = build_optimizer(model, config.optim)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = None
    if config.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)

    progress = Progress()
    rng_to_restore = None
    if resume_from is not None:
        try:
            state = load_training_state(resume_from)
            load_weights(model, resume_from)
            optimizer.load_state_dict(state["optimizer"])
            if scaler is not None and state["scaler"] is not None:
                scaler.load_state_dict(state["scaler"])
            if ema is not None:
                load_weights(ema.module, resume_from, ema=True)
                ema.n_averaged.fill_(state["ema_n_averaged"])
        except (ValueError, FileNotFoundError, KeyError) as error:  # damaged files, or a checkpoint of another run
            raise ConfigError(f"cannot resume from {resume_from}: {error}") from error
        progress = Progress(**state["progress"])
        rng_to_restore = state["rng"]
    steps_total = steps_per_epoch * config.schedule.epochs
    if config.max_steps is not None:
        steps_total = min(steps_total, config.max_steps)
    if plan is not None and progress.step >= steps_total:
        raise RunFinishedError(plan.run_dir, progress, config)

    # Every check has passed: from here on the run writes.
    lock = None
    run_dir = plan.run_dir if plan is not None and in_place else _new_run_dir(config, info, name_hint)
    if plan is not None and in_place and plan.saved is not None:
        # The run keeps its recorded name and place, and its config.yaml stays a recipe that starts it afresh.
        saved = plan.saved
        config = dataclasses.replace(config, run_name=saved.run_name, output_dir=saved.output_dir, resume=saved.resume)
    if info.is_main:
        lock = RunLock(run_dir).acquire()
        if in_place:
            remove_partial_checkpoints(run_dir)
        if plan is not None:
            resume.record(run_dir, plan, config, progress.step)
        atomic_write(run_dir / CONFIG_NAME, lambda tmp: Path(tmp).write_text(dump_config(config)))
    if rng_to_restore is not None:
        set_rng_state(rng_to_restore)
    try:
        return _train(
            config,
            run_dir=run_dir,
            info=info,
            device=device,
            model=model,
            optimizer=optimizer,
            scaler=scaler,
            ema=ema,
            progress=progress,
            resume_from=resume_from,
            resumed=plan is not None,
            loaders=(train_loader, train_sampler, eval_loader),
            augments=(train_augment, eval_augment),
            micro_batch=micro_batch,
            steps_per_epoch=steps_per_epoch,
        )
    finally:
        if lock is not None:
            lock.release()


class RunFinishedError(ConfigError):
    """A resume of a run that has already done all its steps: nothing to do."""

    def __init__(self, run_dir: Path, progress: Progress, config: RunConfig) -> None:
        limit = f"max_steps {config.max_steps}" if config.max_steps is not None else "none left"
        super().__init__(
            f"run {run_dir} has already finished: {progress.epoch} of {config.schedule.epochs} epochs, "
            f"{progress.step} steps ({limit}); nothing to do. To train it further, resume with more epochs: "
            f"`{_resume_command(run_dir)} --schedule.epochs {config.schedule.epochs + 1}`"
        )


def _train(
    config: RunConfig,
    *,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    ema: nn.Module | None,
    progress: Progress,
    resume_from: Path | None,
    resumed: bool,
    loaders: tuple[DataLoader, ResumableDistributedSampler, DataLoader],
    augments: tuple[BatchAugment | None, BatchAugment | None],
    micro_batch: int,
    steps_per_epoch: int,
) -> RunResult:
    """The epochs of a checked run whose directory exists; see :func:`fit`."""
    train_loader, train_sampler, eval_loader = loaders
    train_augment, eval_augment = augments
    train_model = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)

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
    if resumed:  # from its checkpoint's step, or from 0 for a run that stopped before its first one
        log.drop_after(progress.step)
    primary = PRIMARY_METRIC[config.task]
    last_checkpoint: Path | None = resume_from
    best_checkpoint: Path | None = None
    requests = StopRequests()

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

    def stop_if_requested(*, saved: bool) -> None:
        flag = torch.tensor([float(requests.signum or 0)], device=device)
        signum = int(all_reduce_sum(flag).item()) if info.enabled else int(flag.item())
        if not signum:
            return
        if not saved:
            checkpoint()
        signum = requests.signum or signal.SIGTERM  # the ranks that got no signal stop with their peers
        raise TrainingInterrupted(
            signum, progress.step, str(last_checkpoint) if last_checkpoint else None, _resume_command(run_dir)
        )

    def after_step() -> None:
        every = config.checkpoint_every_steps
        saved = every is not None and progress.step % every == 0
        if saved:
            checkpoint()
        stop_if_requested(saved=saved)
        if config.max_steps is not None and progress.step >= config.max_steps:
            raise _MaxStepsReached

    def evaluate_and_log(epoch: float) -> bool:
        """Evaluate, log and remember the result; returns whether it is the best so far."""
        metrics = evaluate(model, eval_loader, eval_settings)
        if ema is not None:
            metrics |= {f"ema_{k}": v for k, v in evaluate(ema.module, eval_loader, eval_settings).items()}
        log.write("eval", step=progress.step, epoch=epoch, **metrics)
        is_best = progress.best_value is None or metrics[primary] > progress.best_value
        if is_best:
            progress.best_value, progress.best_step = metrics[primary], progress.step
        progress.last_eval, progress.last_eval_step = metrics, progress.step
        if info.is_main:
            print(f"epoch {epoch:g}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
        return is_best

    try:
        with requests:
            try:
                for epoch in range(progress.epoch, schedule.epochs):
                    progress.epoch = epoch
                    train_sampler.set_epoch(epoch, start=progress.batch_in_epoch * micro_batch)
                    train_loader.generator.manual_seed(config.seed + epoch)
                    train_one_epoch(
                        train_model, train_loader, optimizer, settings, progress, log=log, on_step=after_step
                    )
                    progress.epoch, progress.batch_in_epoch = epoch + 1, 0
                    is_best = False
                    if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == schedule.epochs:
                        is_best = evaluate_and_log(float(epoch + 1))
                    checkpoint(is_best)
                    stop_if_requested(saved=True)
            except _MaxStepsReached:
                # A short run: evaluate where it stopped, so that it ends like any run with figures and a checkpoint.
                checkpoint(evaluate_and_log(round(progress.step / steps_per_epoch, 4)))
    except NonFiniteLossError as error:
        error.last_checkpoint = str(last_checkpoint) if last_checkpoint is not None else None
        if info.is_main:  # the curve up to the failure is what one wants to look at now
            stopped_at = (error.step, error.step / steps_per_epoch)
            error.plot_path = str(_plot(run_dir, primary, stopped_at=stopped_at))
        raise
    finally:
        log.close()

    plot_path = _plot(run_dir, primary) if info.is_main else None
    best_link = run_dir / CHECKPOINTS / "best"
    return RunResult(
        run_dir=run_dir,
        metrics=dict(progress.last_eval),
        best_value=progress.best_value,
        last_checkpoint=last_checkpoint,
        best_checkpoint=best_link.resolve() if best_link.exists() else best_checkpoint,
        metrics_path=run_dir / METRICS_NAME,
        plot_path=plot_path,
    )
