"""Resuming a run: rebuilt from its saved config, with only the overrides that leave its checkpoints valid.

``bixt train --resume RUN_OR_CHECKPOINT [--key value ...]`` reads ``RUN/config.yaml`` and applies the command line's
overrides on top. An override of a key outside :data:`SAFE_ON_RESUME` (the model, the data, the task, the batch,
the optimizer's kind...) would make the run something its checkpoints are not, so it is refused, naming the
difference, before anything is written. Safe changes (more epochs, evaluation frequency, threads...) are recorded
in ``RUN/resumes.jsonl`` and in the rewritten ``config.yaml``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bixt.engine.checkpoint import is_complete, resolve_checkpoint, run_dir_of
from bixt.engine.config import ConfigError, RunConfig, config_to_dict, load_config, parse_config
from bixt.engine.run_dir import RUN_CONFIG_NAME

RESUMES_NAME = "resumes.jsonl"

# Keys a resume may change: how long and how the run goes on, not what the checkpoint holds. ``run_name`` and
# ``output_dir`` choose where the continued run goes (by default: on in its own directory).
SAFE_ON_RESUME = (
    "schedule.epochs",
    "max_steps",
    "eval_every_epochs",
    "eval_batch_size",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "log_every_steps",
    "progress",
    "tensorboard",
    "threads",
    "processes",
    "device",
    "compile",
    "attention",
    "mlp_memory",
    "data.num_workers",
    "data.fetch",
    "data.cache_dir",
    "resume",
    "run_name",
    "output_dir",
)
# Filled in by the first run when left empty (normalisation statistics, the attention path and the MLP memory mode
# in force): empty on resume means "as saved".
_RESOLVED_BY_THE_RUN = ("augment.mean", "augment.std", "attention", "mlp_memory")
# Resolved by the first run when "auto" (saved as what it chose): "auto" on resume means "as saved", so that a run
# resumed on another machine keeps the precision its checkpoints were trained in.
_AUTO_RESOLVED_BY_THE_RUN = ("precision",)


@dataclass
class ResumePlan:
    """Where a resume starts: the run it continues, its checkpoint (None: it stopped before its first one) and the
    saved config it is compared against (None: a checkpoint directory outside any run)."""

    run_dir: Path
    checkpoint: Path | None
    saved: RunConfig | None


def _resume_value(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--resume" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--resume="):
            return arg.split("=", 1)[1]
    return None


def _saved_config_path(resume: str) -> Path:
    path = Path(resume)
    if (path / RUN_CONFIG_NAME).is_file():  # a run directory
        return path / RUN_CONFIG_NAME
    if is_complete(path):  # a checkpoint directory inside its run: RUN/checkpoints/step-N
        return run_dir_of(path) / RUN_CONFIG_NAME
    return path / RUN_CONFIG_NAME  # missing: plan() says why


def parse_train_args(argv: list[str]) -> RunConfig:
    """The command line of ``bixt train``: a recipe and overrides, or with ``--resume`` the run's saved config and
    overrides (a recipe given as well is applied over the saved config and checked like any override)."""
    resume = _resume_value(argv)
    if resume is None:
        return parse_config(argv)
    saved = _saved_config_path(resume)
    if not saved.is_file():
        return parse_config(argv)  # a checkpoint outside a run: the command line must say everything; plan() checks
    # The saved name and place are the run's own: only a --run_name given now sends the resumed run elsewhere
    # (beside the original unless --output_dir says otherwise).
    where = ["--run_name", "null", "--output_dir", str(saved.parent.parent)]
    return parse_config(["--config", str(saved), *where, *argv])


def _flat(config: RunConfig) -> dict[str, Any]:
    def walk(value: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict) and key != "options":  # options are one value: a model's / data set's kwargs
                out |= walk(item, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = item
        return out

    return walk(config_to_dict(config), "")


def differences(saved: RunConfig, config: RunConfig) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved value, new value)} for every key that differs."""
    old, new = _flat(saved), _flat(config)
    for key in _RESOLVED_BY_THE_RUN:
        if new[key] is None:
            new[key] = old[key]
    for key in _AUTO_RESOLVED_BY_THE_RUN:
        if new[key] == "auto":
            new[key] = old[key]
    return {key: (old[key], new[key]) for key in old if old[key] != new[key]}


def plan(config: RunConfig) -> ResumePlan:
    """Check a resume before anything is built or written. Raises ConfigError naming what cannot change."""
    assert config.resume is not None
    path = Path(config.resume)
    try:
        checkpoint: Path | None = resolve_checkpoint(path, prefer="last")
    except FileNotFoundError as error:
        if not (path / RUN_CONFIG_NAME).is_file():
            raise ConfigError(f"cannot resume from {path}: {error}") from error
        checkpoint = None  # a run that stopped before its first checkpoint: it starts again from step 0
    run_dir = run_dir_of(checkpoint) if checkpoint is not None else path.resolve()
    saved_path = run_dir / RUN_CONFIG_NAME
    saved = None
    if saved_path.is_file():
        saved = load_config(saved_path)
        unsafe = {k: v for k, v in differences(saved, config).items() if k not in SAFE_ON_RESUME}
        if unsafe:
            lines = "\n".join(f"  {key}: {old!r} in the run, {new!r} now" for key, (old, new) in unsafe.items())
            raise ConfigError(
                f"cannot resume {run_dir} with a different run: its checkpoints hold a run of other settings\n{lines}\n"
                f"only these may change on resume: {', '.join(SAFE_ON_RESUME)}; to train something else, start a "
                f"new run with -c {saved_path} and the changes"
            )
    return ResumePlan(run_dir, checkpoint, saved)


def record(run_dir: Path, resumed: ResumePlan, config: RunConfig, step: int) -> None:
    """Append what this resume changed (and from where it went on) to ``resumes.jsonl``."""
    changes = differences(resumed.saved, config) if resumed.saved is not None else {}
    changes = {k: v for k, v in changes.items() if k not in ("resume", "run_name", "output_dir")}
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "from": str(resumed.checkpoint) if resumed.checkpoint is not None else None,
        "step": step,
        "changes": {k: {"was": old, "now": new} for k, (old, new) in changes.items()},
    }
    with (run_dir / RESUMES_NAME).open("a") as f:
        f.write(json.dumps(entry) + "\n")
