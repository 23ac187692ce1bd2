"""Training checkpoints: written atomically, resumable bit for bit, readable by ``from_pretrained``.

Layout of a run directory::

    config.yaml               the fully resolved run config
    metrics.jsonl             one JSON record per log step / evaluation
    checkpoints/
      step-00001234/          one checkpoint, written as a temporary directory and renamed into place
        model.safetensors     weights  } save_pretrained format: bixt.from_pretrained(path) rebuilds the model
        config.json           model config }
        ema.safetensors       EMA weights (when the run keeps an EMA)
        training_state.pt     optimizer, grad scaler, RNG states, progress (epoch, step, position in the epoch)
        meta.json             step, epoch and the evaluation metrics at that point
      last -> step-...        symbolic links, replaced atomically
      best -> step-...
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

CHECKPOINTS = "checkpoints"
STATE_NAME = "training_state.pt"
META_NAME = "meta.json"
EMA_NAME = "ema.safetensors"
REQUIRED_FILES = ("model.safetensors", "config.json", STATE_NAME, META_NAME)


@dataclass
class Progress:
    """Where training stands: ``step`` optimizer steps done; ``batch_in_epoch`` micro-batches of ``epoch`` consumed."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best_value: float | None = None
    best_step: int | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int | None = None  # the step whose weights last_eval describes


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
        "python": [list(v) if isinstance(v, tuple) else v for v in random.getstate()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _replace_link(directory: Path, name: str, target: str) -> None:
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, directory / name)


def save_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    scaler: torch.amp.GradScaler | None = None,
    ema: nn.Module | None = None,
    is_best: bool = False,
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/step-<step>`` atomically, point ``last`` (and ``best``) at it, prune old ones."""
    directory = run_dir / CHECKPOINTS
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{progress.step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=directory))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is as shareable as any directory
        model.save_pretrained(tmp)
        if ema is not None:
            save_file({k: v.detach().contiguous() for k, v in ema.module.state_dict().items()}, tmp / EMA_NAME)
        state = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema_n_averaged": ema.n_averaged if ema is not None else None,
            "rng": rng_state(),
            "progress": asdict(progress),
        }
        torch.save(state, tmp / STATE_NAME)
        (tmp / META_NAME).write_text(json.dumps(asdict(progress), indent=2))
        final = directory / name
        if final.is_dir():
            _replace_same_step(tmp, final)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_link(directory, "last", name)
    if is_best:
        _replace_link(directory, "best", name)
    _prune(directory, keep)
    return final


def _replace_same_step(tmp: Path, final: Path) -> None:
    """The same step saved again (a step checkpoint, then the end-of-epoch one with its evaluation).

    The weights are the same, so the files are swapped one by one, each atomically, the training state before the
    metadata: at every moment ``final`` is a complete checkpoint of this step (``last`` never dangles), and
    ``training_state.pt`` alone decides where a resume continues.
    """
    for name in (*sorted(p.name for p in tmp.iterdir() if p.name not in (STATE_NAME, META_NAME)), STATE_NAME):
        os.replace(tmp / name, final / name)
    os.replace(tmp / META_NAME, final / META_NAME)
    tmp.rmdir()


def _prune(directory: Path, keep: int) -> None:
    """Delete step checkpoints beyond the newest ``keep``, never the ones ``last`` or ``best`` point at."""
    linked = {os.readlink(directory / link) for link in ("last", "best") if (directory / link).is_symlink()}
    steps = sorted(p.name for p in directory.glob("step-*") if p.is_dir())
    for name in steps[: max(len(steps) - keep, 0)]:
        if name not in linked:
            shutil.rmtree(directory / name, ignore_errors=True)


def is_complete(checkpoint: Path) -> bool:
    """Whether a directory holds every file a resume needs (a renamed-into-place checkpoint always does)."""
    return all((checkpoint / name).is_file() for name in REQUIRED_FILES)


def newest_complete(run_dir: Path) -> Path | None:
    """The complete ``step-N`` checkpoint with the largest N, whatever the links say; None if there is none."""
    steps = sorted((p for p in (run_dir / CHECKPOINTS).glob("step-*") if is_complete(p)), key=lambda p: p.name)
    return steps[-1].resolve() if steps else None


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint directory from a checkpoint path or a run directory: its ``prefer``-ed link, else the other link,
    else the newest complete checkpoint (a link left dangling by a run killed while it replaced checkpoints)."""
    path = Path(path)
    if path.is_dir() and (path / STATE_NAME).is_file():
        if not is_complete(path):
            missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
            raise FileNotFoundError(f"checkpoint {path} is incomplete: {', '.join(missing)} missing")
        return path.resolve()
    links = (prefer, "last" if prefer == "best" else "best")
    for link in links:
        candidate = path / CHECKPOINTS / link
        if is_complete(candidate):
            return candidate.resolve()
    newest = newest_complete(path)
    if newest is not None:
        return newest
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (expected a run directory or a checkpoint directory)")
    raise FileNotFoundError(
        f"{path} is neither a checkpoint directory (with {STATE_NAME}) nor a run directory with a complete "
        f"checkpoint in {CHECKPOINTS}/"
    )


def remove_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Delete what a killed save left behind (``.step-N.*.tmp`` directories, ``.last.*.tmp`` links); returns them.

    Only the process that holds the run may call this: another one's save in progress looks the same.
    """
    directory = run_dir / CHECKPOINTS
    removed = sorted(directory.glob(".*.tmp")) if directory.is_dir() else []
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to: <run>/checkpoints/step-N -> <run>."""
    return checkpoint.resolve().parent.parent


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)


def load_weights(model: nn.Module, checkpoint: Path, *, ema: bool = False) -> None:
    path = checkpoint / (EMA_NAME if ema else "model.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found" + (" (the run kept no EMA)" if ema else ""))
    model.load_state_dict(load_file(path, device=str(next(model.parameters()).device)))


def read_meta(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / META_NAME).read_text())
