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
        if final.exists():  # the same step saved twice (e.g. a step checkpoint at the end of an epoch)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_link(directory, "last", name)
    if is_best:
        _replace_link(directory, "best", name)
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    """Delete step checkpoints beyond the newest ``keep``, never the ones ``last`` or ``best`` point at."""
    linked = {os.readlink(directory / link) for link in ("last", "best") if (directory / link).is_symlink()}
    steps = sorted(p.name for p in directory.glob("step-*") if p.is_dir())
    for name in steps[: max(len(steps) - keep, 0)]:
        if name not in linked:
            shutil.rmtree(directory / name, ignore_errors=True)


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint directory from a checkpoint path or a run directory (its ``prefer``-ed, else the other, link)."""
    path = Path(path)
    if (path / STATE_NAME).is_file():
        return path.resolve()
    links = (prefer, "last" if prefer == "best" else "best")
    for link in links:
        candidate = path / CHECKPOINTS / link
        if (candidate / STATE_NAME).is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"{path} is neither a checkpoint directory (with {STATE_NAME}) nor a run directory with {CHECKPOINTS}/last"
    )


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
