"""The typed run configuration: YAML recipe + command-line overrides, parsed and type-checked by jsonargparse.

A recipe is a YAML file whose keys mirror :class:`RunConfig`; every field can be overridden on the command line with
its dotted name (``--optim.lr 3e-4 --schedule.epochs 5``). Unknown keys and ill-typed values are rejected before
anything is built; the error lists the valid keys. The fully resolved config is written into every run directory and
is what ``bixt eval`` reads back.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Task = Literal["classification", "retrieval", "semantic_segmentation", "part_segmentation"]


class ConfigError(ValueError):
    """A configuration that cannot work: raised before any training starts."""


@dataclass
class ModelSection:
    name: str = "bixt_ti_l64_p16s4"  # a registered model (bixt models)
    options: dict[str, Any] = field(default_factory=dict)  # overrides of the model's config fields


@dataclass
class DataSection:
    name: str = "fashion-mnist"  # a registered data set (bixt data list)
    train_split: str = "train"
    eval_split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)  # passed to bixt.data.load_dataset (max_length=, root=...)
    train_limit: int | None = None  # keep only the first N items (smoke runs)
    eval_limit: int | None = None
    fetch: bool = False  # fetch a missing registry data set before loading it
    cache_dir: str | None = None
    num_workers: int = 0
    collate: Literal["stack", "padded"] = "stack"  # padded: ragged sequences / pairs through bixt.data.collate


@dataclass
class AugmentSection:
    # none: inputs as the data set gives them; normalize: per-channel (x - mean) / std; deit3: SPEC 3.1's training
    # pipeline (random resized crop, flip, 3-Augment, colour jitter), normalised, on the model's device.
    image: Literal["none", "normalize", "deit3"] = "none"
    image_size: int | None = None  # output size of deit3 (default: the input size)
    mean: tuple[float, ...] | None = None  # None: computed from the training split once and cached
    std: tuple[float, ...] | None = None
    pad: int = 0  # zero pixels added on every side of an image after normalising, e.g. 28 -> 32 for a stride-8 stem
    mixup_alpha: float = 0.0  # mixup / cutmix with soft targets when either is > 0
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.0
    points: bool = False  # random scale / shift / rotation / jitter of point clouds
    point_coords: int = 3  # how many leading point channels are coordinates (2 for image point sets)


@dataclass
class OptimSection:
    name: Literal["adamw", "lamb"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad_norm: float | None = None  # LAMB (lambc) additionally clips the global norm at 1.0 inside itself


@dataclass
class ScheduleSection:
    epochs: int = 10
    warmup_epochs: float = 1.0  # linear warm-up from warmup_lr, counted inside `epochs`
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    per: Literal["step", "epoch"] = "step"  # the paper steps per epoch; per step is smoother for short runs


@dataclass
class RunConfig:
    """Everything that defines a training run. ``batch_size`` is global: over processes and accumulation steps."""

    task: Task = "classification"
    loss: Literal["ce", "bce"] = "ce"  # bce: binary cross-entropy with logits on (soft) one-hot targets
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    batch_size: int = 128
    grad_accum_steps: int = 1
    eval_batch_size: int | None = None  # per process; default: the training micro-batch
    # auto: bf16 autocast where the hardware makes it pay, else fp32 (bixt.precision); fp16 (grad scaler) needs a GPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the model
    ema_decay: float | None = None  # keep an exponential moving average of the weights, evaluated alongside
    seed: int = 42
    device: str = "auto"  # auto: cuda:LOCAL_RANK when available, else cpu
    threads: int | None = None  # torch.set_num_threads, e.g. the number of cores
    output_dir: str = "runs"
    run_name: str | None = None  # default: <recipe>-<time>; with resume: the resumed run's directory
    resume: str | None = None  # a checkpoint directory or a run directory (its last checkpoint)
    eval_every_epochs: int = 1
    checkpoint_every_steps: int | None = None  # besides the one at the end of every epoch
    keep_checkpoints: int = 2  # newest step checkpoints kept (the best one is always kept)
    log_every_steps: int = 50
    progress: bool = True  # a tqdm progress bar on rank 0
    tensorboard: bool = False


def _parser():
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(
        prog="bixt train",
        description="Train a model from a YAML recipe; any field can be overridden as --section.key VALUE.",
        exit_on_error=False,
        default_env=False,
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a YAML recipe (configs/*.yaml)")
    parser.add_class_arguments(RunConfig, as_group=False)
    return parser


def valid_keys() -> list[str]:
    """Every dotted key a recipe may set, e.g. 'optim.lr'."""

    def walk(cls: type, prefix: str) -> list[str]:
        keys = []
        for f in dataclasses.fields(cls):
            nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
            if isinstance(nested, type) and dataclasses.is_dataclass(nested):
                keys += walk(nested, f"{prefix}{f.name}.")
            else:
                keys.append(f"{prefix}{f.name}")
        return keys

    return walk(RunConfig, "")


def _explain(error: Exception) -> ConfigError:
    message = str(error).strip()
    keys = valid_keys()
    hint = ""
    # jsonargparse names an unknown nested key as "Group 'optim' does not accept option 'lrr'"
    unknown = re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", message)
    # ... or "Option 'batchsize' is not accepted" (a recipe), or "unrecognized arguments: --optim.lrr 3" (a flag)
    other = re.search(r"Option '([\w.]+)' is not accepted", message) or re.search(r"arguments: --([\w.]+)", message)
    name = f"{unknown[1]}.{unknown[2]}" if unknown else other[1] if other else None
    if name:
        close = difflib.get_close_matches(name, keys, n=3)
        hint = f"\ndid you mean: {', '.join(close)}?" if close else ""
    return ConfigError(f"invalid configuration: {message}{hint}\nvalid keys: {', '.join(keys)}")


def parse_config(argv: list[str]) -> RunConfig:
    """``-c recipe.yaml --key value ...`` -> RunConfig. Raises ConfigError naming the valid keys."""
    parser = _parser()
    try:
        namespace = parser.parse_args(argv)
        namespace.pop("config", None)
        config = parser.instantiate(namespace)
    except Exception as error:  # jsonargparse raises ArgumentError / ValueError / TypeError for bad input
        if isinstance(error, SystemExit):
            raise
        raise _explain(error) from error
    return _from_namespace(config)


def _from_namespace(namespace: Any) -> RunConfig:
    fields = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(RunConfig)}
    return RunConfig(**fields)


def load_config(path: str | Path) -> RunConfig:
    """Read a recipe or a saved resolved config (no overrides)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    return parse_config(["--config", str(path)])


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain YAML-safe dict (tuples as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def print_help() -> None:
    _parser().print_help()
