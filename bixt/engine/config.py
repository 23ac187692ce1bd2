"""The typed run configuration: YAML recipe + command-line overrides, parsed and type-checked by jsonargparse.

A recipe is a YAML file whose keys mirror :class:`RunConfig`; every field can be overridden on the command line with
its dotted name (``--optim.lr 3e-4 --schedule.epochs 5``). Unknown keys and ill-typed values are rejected before
anything is built; the error lists the valid keys. Each section checks its own ranges (``check()``), and
:meth:`RunConfig.check` runs them all. The fully resolved config is written into every run directory and is what
``bixt eval`` reads back.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml


class ConfigError(ValueError):
    """A configuration that cannot work: raised before any training starts."""


def _at_least(minimum: int, values: dict[str, float | None]) -> None:
    """Each value is >= ``minimum`` (or left unset: None); NaN fails too."""
    for name, value in values.items():
        if value is not None and not value >= minimum:
            unset = " (or left unset)" if minimum == 1 else ""
            raise ConfigError(f"{name} must be >= {minimum}{unset}, got {value}")


@dataclass
class ModelSection:
    """model: which registered model, with which config fields"""

    name: str = "bixt_ti_l64_p16s4"  # a registered model (bixt models)
    options: dict[str, Any] = field(default_factory=dict)  # overrides of the model's config fields
    # A run directory or checkpoint (its last checkpoint) whose weights start a fresh run: every weight of this model
    # but its head, matched by name, e.g. a classifier's tokenizer and encoder for segmentation. Ignored on resume.
    init_from: str | None = None
    # With init_from: this model's weights that the checkpoint lacks keep their initialisation (listed at start-up)
    # instead of being an error; a d12 classifier's one-sided last layer has no token side, for instance.
    init_partial: bool = False


@dataclass
class DataSection:
    """data: the data set, its splits and how it is loaded"""

    name: str = "fashion-mnist"  # a registered data set (bixt data list)
    train_split: str = "train"  # the split trained on
    eval_split: str = "test"  # the split evaluated after each epoch (and by bixt eval)
    options: dict[str, Any] = field(default_factory=dict)  # passed to bixt.data.load_dataset (max_length=, root=...)
    train_limit: int | None = None  # keep only the first N items (smoke runs)
    eval_limit: int | None = None  # keep only the first N evaluation items
    fetch: bool = False  # fetch a missing registry data set before loading it
    cache_dir: str | None = None  # the data cache (default: $BIXT_DATA_DIR or ~/.cache/bixt)
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    collate: Literal["stack", "padded"] = "stack"  # padded: ragged sequences / pairs through bixt.data.collate

    def check(self) -> None:
        _at_least(1, {"data.train_limit": self.train_limit, "data.eval_limit": self.eval_limit})
        _at_least(0, {"data.num_workers": self.num_workers})


@dataclass
class AugmentSection:
    """augment: input processing and augmentation, on the model's device"""

    # none: inputs as the data set gives them; normalize: per-channel (x - mean) / std; deit3: SPEC 3.1's training
    # pipeline (random resized crop, flip, 3-Augment, colour jitter), normalised, on the model's device.
    image: Literal["none", "normalize", "deit3"] = "none"
    image_size: int | None = None  # output size of deit3 (default: the input size)
    mean: tuple[float, ...] | None = None  # None: computed from the training split once and cached
    std: tuple[float, ...] | None = None  # per-channel std, like mean
    resize: int | None = None  # bilinear (antialiased) resize of images to resize x resize before normalising
    pad: int = 0  # zero pixels added on every side of an image after normalising, e.g. 28 -> 32 for a stride-8 stem
    # pad before normalising instead: the border is then a black pixel, (0 - mean) / std, not the mean grey; for digits
    # padded to a canvas's size whose background, normalised with the same statistics, is black too.
    pad_before_normalize: bool = False
    flip: bool = False  # training only: random horizontal flip of images (probability 0.5)
    shift: int = 0  # training only: random translation of images by up to this many pixels (zero fill)
    erase: float = 0.0  # training only: probability of zeroing one random rectangle per image (random erasing); 0 = off
    mixup_alpha: float = 0.0  # mixup Beta(alpha, alpha), with soft targets; 0 = off
    cutmix_alpha: float = 0.0  # cutmix Beta(alpha, alpha); 0 = off
    label_smoothing: float = 0.0  # in [0, 1): weight moved from the true class to all classes
    points: bool = False  # random scale / shift / rotation / jitter of point clouds
    point_coords: int = 3  # how many leading point channels are coordinates (2 for image point sets)

    def check(self) -> None:
        _at_least(1, {"augment.image_size": self.image_size})
        _at_least(0, {"augment.pad": self.pad, "augment.shift": self.shift, "augment.mixup_alpha": self.mixup_alpha})
        _at_least(0, {"augment.cutmix_alpha": self.cutmix_alpha})
        if self.pad_before_normalize and (self.image != "normalize" or self.pad == 0):
            raise ConfigError(
                "augment.pad_before_normalize needs augment.image=normalize and augment.pad >= 1, got "
                f"image={self.image!r}, pad={self.pad}"
            )
        if self.resize is not None and self.resize < 1:
            raise ConfigError(f"augment.resize must be a size in pixels >= 1 (or None), got {self.resize}")
        if not 0 <= self.erase <= 1:
            raise ConfigError(f"augment.erase is a probability in [0, 1], got {self.erase}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"augment.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class OptimSection:
    """optim: the optimizer"""

    name: Literal["adamw", "lamb"] = "adamw"  # lamb: pytorch-optimizer's LAMB (the paper's ImageNet recipe)
    lr: float = 1e-3  # peak learning rate (> 0), reached after the warm-up
    weight_decay: float = 0.05  # decoupled; not applied to 1-D parameters and biases
    betas: tuple[float, float] = (0.9, 0.999)  # Adam moment decays, each in [0, 1)
    eps: float = 1e-8  # Adam denominator term (> 0)
    clip_grad_norm: float | None = None  # clip the global gradient norm (None: off); lamb also clips at 1.0

    def check(self) -> None:
        _at_least(0, {"optim.weight_decay": self.weight_decay})
        clip = self.clip_grad_norm
        if not self.lr > 0 or not self.eps > 0 or (clip is not None and not clip > 0):
            raise ConfigError(
                f"optim.lr, optim.eps and optim.clip_grad_norm must be > 0, got {self.lr}, {self.eps}, {clip}"
            )
        if not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"optim.betas must be in [0, 1), got {self.betas}")


@dataclass
class ScheduleSection:
    """schedule: epochs and the cosine learning-rate schedule"""

    epochs: int = 10  # passes over the training split (more may be given on --resume)
    warmup_epochs: float = 1.0  # linear warm-up from warmup_lr, counted inside `epochs`
    warmup_lr: float = 1e-6  # learning rate (>= 0) at the start of the warm-up
    min_lr: float = 1e-5  # floor (>= 0) the cosine decays to
    per: Literal["step", "epoch"] = "step"  # the paper steps per epoch; per step is smoother for short runs

    def check(self) -> None:
        if self.epochs < 1 or not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(
                f"need schedule.epochs >= 1 and 0 <= warmup_epochs <= epochs, got {self.epochs} and "
                f"{self.warmup_epochs}"
            )
        _at_least(0, {"schedule.warmup_lr": self.warmup_lr, "schedule.min_lr": self.min_lr})


@dataclass
class RunConfig:
    """Everything that defines a training run. ``batch_size`` is global: over processes and accumulation steps."""

    # what the labels are: a task of bixt.engine.tasks.TASKS (classification, retrieval, semantic_segmentation,
    # part_segmentation: per item, per pair, per pixel or per point)
    task: str = "classification"
    loss: Literal["ce", "bce"] = "ce"  # bce: binary cross-entropy with logits on (soft) one-hot targets
    model: ModelSection = field(default_factory=ModelSection)  # see the model group
    data: DataSection = field(default_factory=DataSection)  # see the data group
    augment: AugmentSection = field(default_factory=AugmentSection)  # see the augment group
    optim: OptimSection = field(default_factory=OptimSection)  # see the optim group
    schedule: ScheduleSection = field(default_factory=ScheduleSection)  # see the schedule group
    batch_size: int = 128  # global: over processes and accumulation steps
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    eval_batch_size: int | None = None  # per process; default: the training micro-batch
    # auto: bf16 autocast where the hardware makes it pay, else fp32 (bixt.precision); fp16 (grad scaler) needs a GPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the model
    # the attention path to train with (bixt.layers.attention_paths: auto, explicit, fused, chunked, triton); unset:
    # the one in force ($BIXT_ATTN, else auto), which the run records here in its saved config
    attention: str | None = None
    # the MLP memory mode to train with (bixt.layers.mlp: fast, or low: large pre-norm MLP branches and attention
    # projections keep only their input, ~25% less peak memory at 3,136 tokens); unset: the one in force
    # ($BIXT_MLP_MEMORY, else fast), which the run records here in its saved config
    mlp_memory: str | None = None
    ema_decay: float | None = None  # an EMA of the weights, evaluated alongside; its decay ramps up to this one
    seed: int = 42  # initial weights, data order and augmentation
    device: str = "auto"  # auto: cuda:LOCAL_RANK when available, else cpu
    threads: int | None = None  # torch.set_num_threads, e.g. the number of cores
    # processes of `bixt train` (data-parallel through torchrun on this machine; global batch unchanged); auto: 2 of
    # half the cores' threads each on a CPU with AVX-512 and 2+ cores, else 1 (bixt.engine.launch). Under torchrun:
    # torchrun's count
    processes: int | Literal["auto"] = 1
    output_dir: str = "runs"  # where run directories are made
    run_name: str | None = None  # default: <recipe>-<time>, suffixed -2, -3... if taken; with resume: the run's own
    resume: str | None = None  # a run directory (its newest checkpoint) or a checkpoint; reads the run's config.yaml
    max_steps: int | None = None  # stop after this many optimizer steps in all (then evaluate and checkpoint)
    eval_every_epochs: int = 1  # evaluate every N epochs (and always after the last)
    checkpoint_every_steps: int | None = None  # besides the one at the end of every epoch
    keep_checkpoints: int = 2  # newest step checkpoints kept (the best one is always kept)
    log_every_steps: int = 50  # a train record in metrics.jsonl every N steps
    progress: bool = True  # rank 0: a tqdm bar on a terminal, else a line every log_every_steps steps (or minute)
    tensorboard: bool = False  # also log to <run>/tensorboard (needs the tensorboard package)

    def check(self) -> None:
        """ConfigError for a value that makes a run meaningless, named with the range it needs (what needs the
        device, the processes or the data is checked by the run: bixt.engine.preflight)."""
        from bixt.engine.tasks import get_task  # torch: `bixt train --help` reads this module without it
        from bixt.layers.attention_paths import AttentionPath
        from bixt.layers.mlp import MLP_MEMORY_MODES

        get_task(self.task)
        if self.attention is not None and self.attention not in get_args(AttentionPath):
            raise ConfigError(
                f"attention must be one of {', '.join(map(repr, get_args(AttentionPath)))} (or unset), got "
                f"{self.attention!r}"
            )
        if self.mlp_memory is not None and self.mlp_memory not in MLP_MEMORY_MODES:
            modes = ", ".join(map(repr, MLP_MEMORY_MODES))
            raise ConfigError(f"mlp_memory must be one of {modes} (or unset), got {self.mlp_memory!r}")
        if self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ConfigError(
                f"batch_size and grad_accum_steps must be >= 1, got {self.batch_size}, {self.grad_accum_steps}"
            )
        self.schedule.check()
        _at_least(
            1,
            {
                "eval_every_epochs": self.eval_every_epochs,
                "log_every_steps": self.log_every_steps,
                "keep_checkpoints": self.keep_checkpoints,
                "eval_batch_size": self.eval_batch_size,
                "max_steps": self.max_steps,
                "checkpoint_every_steps": self.checkpoint_every_steps,
                "threads": self.threads,
            },
        )
        if self.processes != "auto" and self.processes < 1:
            raise ConfigError(f"processes must be >= 1 or 'auto', got {self.processes}")
        self.data.check()
        self.augment.check()
        self.optim.check()
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")


def _field_comments(cls: type) -> dict[str, str]:
    """What the source says of each field: its line's trailing comment, else the comment lines just above it."""
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped[1:].strip())
            continue
        match = re.match(r"\s+(\w+): [^#]*(?:#\s*(.*))?$", line)
        if match:
            comments[match[1]] = match[2] or " ".join(above)
        above = []
    return comments


def _sections() -> dict[str, type]:
    return {
        f.name: f.default_factory for f in dataclasses.fields(RunConfig) if dataclasses.is_dataclass(f.default_factory)
    }


def key_help() -> dict[str, str]:
    """Every dotted key's description, from the comments of the config's source."""
    helps = {k: v for k, v in _field_comments(RunConfig).items() if k not in _sections()}
    for name, section in _sections().items():
        helps |= {f"{name}.{key}": text for key, text in _field_comments(section).items()}
    return helps


@functools.cache
def key_types() -> dict[str, Any]:
    """Every dotted key's annotated type."""
    types = {k: v for k, v in typing.get_type_hints(RunConfig).items() if k not in _sections()}
    for name, section in _sections().items():
        types |= {f"{name}.{key}": kind for key, kind in typing.get_type_hints(section).items()}
    return types


def _parser():
    from jsonargparse import ActionConfigFile, ArgumentParser  # optional: the `train` extra

    parser = ArgumentParser(
        prog="bixt train",
        description="Train a model from a YAML recipe; any field can be overridden as --section.key VALUE.",
        exit_on_error=False,
        default_env=False,
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a YAML recipe (configs/*.yaml)")
    parser.add_class_arguments(RunConfig, as_group=False)
    helps = key_help()
    for action in parser._actions:  # jsonargparse reads docstrings, not comments: give every key its comment
        if action.dest in helps:
            action.help = helps[action.dest] + " (type: %(type)s, default: %(default)s)"
    for name, section in _sections().items():
        parser.groups[name].title = section.__doc__
    return parser


def valid_keys() -> list[str]:
    """Every dotted key a recipe may set, e.g. 'optim.lr'."""
    return list(key_types())


_SCALAR = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.IGNORECASE)


def _join_negative_numbers(argv: list[str]) -> list[str]:
    """``--key -1e-3`` -> ``--key=-1e-3``: argparse takes a value that starts with '-' for an option, except plain
    integers and decimals; joined, every number works as a value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if arg.startswith("--") and "=" not in arg and value.startswith("-") and _SCALAR.fullmatch(value):
            out.append(f"{arg}={value}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def _check_recipe_files(argv: list[str]) -> None:
    """Each ``-c`` file exists and is a YAML mapping; a syntax error names the file, line and column."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1])
        elif arg in ("-c", "--config") and i + 1 < len(argv):
            path = Path(argv[i + 1])
        else:
            continue
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            content = yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
            raise ConfigError(f"{path}: not valid YAML at {where}: {error.problem or error.context}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not a readable YAML file: {error}") from None
        if content is not None and not isinstance(content, dict):
            raise ConfigError(
                f"{path}: a recipe must be a mapping of keys (like `optim: {{lr: 0.001}}`), got a "
                f"{type(content).__name__}"
            )


def _explain(error: Exception, argv: list[str]) -> ConfigError:
    """The real problem first, in this project's words where jsonargparse's are long, and a short "did you mean"."""
    from bixt.models.config_checks import describe_type  # bixt.models imports torch: only for an error message

    message = str(error).strip()
    typed = re.match(r'Parser key "([\w.]+)":', message)
    given = re.search(r"(?:Got value|Given value): (.*)", message)
    if typed and given and typed[1] in key_types():
        message = f"{typed[1]} must be {describe_type(key_types()[typed[1]])}, got {given[1].strip()!r}"
    missing = re.search(r"argument (--[\w.]+): expected one argument", message)
    if missing and missing[1] in argv[:-1] and argv[argv.index(missing[1]) + 1].startswith("-"):
        message += f" (a value that starts with '-' must be joined to its key: {missing[1]}=-...)"
    # jsonargparse names an unknown nested key as "Group 'optim' does not accept option 'lrr'"
    unknown = re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", message)
    # ... or "Option 'batchsize' is not accepted" (a recipe), or "unrecognized arguments: --optim.lrr 3" (a flag)
    other = re.search(r"Option '([\w.]+)' is not accepted", message) or re.search(r"arguments: --([\w.]+)", message)
    name = f"{unknown[1]}.{unknown[2]}" if unknown else other[1] if other else None
    hint = ""
    if name:
        close = difflib.get_close_matches(name, valid_keys(), n=3)
        hint = f"\ndid you mean: {', '.join(close)}?" if close else ""
    return ConfigError(f"invalid configuration: {message}{hint}\nvalid keys and what they mean: bixt train --help")


def parse_config(argv: list[str]) -> RunConfig:
    """``-c recipe.yaml --key value ...`` -> RunConfig. Raises ConfigError naming the valid keys."""
    _check_recipe_files(argv)
    parser = _parser()
    try:
        namespace = parser.parse_args(_join_negative_numbers(argv))
        namespace.pop("config", None)
        config = parser.instantiate(namespace)
    except Exception as error:  # jsonargparse raises ArgumentError / ValueError / TypeError for bad input
        if isinstance(error, SystemExit):
            raise
        raise _explain(error, argv) from error
    config = RunConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)})
    from bixt.engine.tasks import get_task  # torch: `bixt train --help` reads this module without it

    get_task(config.task)  # a name the registry lacks fails like any ill-typed value; ranges are the run's to check
    return config


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
