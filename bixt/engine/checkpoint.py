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
        meta.json             step, epoch, the evaluation metrics at that point, sha256 of the files above
                              (model.safetensors' is in config.json): loading checks them
      last -> step-...        symbolic links, replaced atomically
      best -> step-...
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from bixt.fileio import DamagedFileError, atomic_symlink, atomic_write, check_sha256, sha256_file, temporary_path
from bixt.models.serialization import WEIGHTS_NAME, load_state_checked, load_weights_file, read_json

CHECKPOINTS = "checkpoints"
STATE_NAME = "training_state.pt"
META_NAME = "meta.json"
EMA_NAME = "ema.safetensors"
REQUIRED_FILES = (WEIGHTS_NAME, "config.json", STATE_NAME, META_NAME)


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
    final = directory / name
    with temporary_path(final) as tmp:  # a killed save leaves .step-N.*.tmp, which resume removes
        tmp.mkdir()
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
        checksums = {name: sha256_file(tmp / name) for name in (EMA_NAME, STATE_NAME) if (tmp / name).is_file()}
        (tmp / META_NAME).write_text(json.dumps({**asdict(progress), "sha256": checksums}, indent=2))
        if final.is_dir():
            _replace_same_step(tmp, final)
        else:
            os.rename(tmp, final)
    atomic_symlink(directory / "last", name)
    if is_best:
        atomic_symlink(directory / "best", name)
    _prune(directory, keep)
    return final


def _replace_same_step(tmp: Path, final: Path) -> None:
    """The same step saved again (a step checkpoint, then the end-of-epoch one with its evaluation).

    The weights are the same, so the files are swapped one by one, each atomically: at every moment ``final`` is a
    complete checkpoint of this step whose files match their recorded sha256 (``last`` never dangles), and
    ``training_state.pt`` alone decides where a resume continues. While the training state is swapped, the metadata
    accepts the old state's sha256 and the new one's.
    """
    new_meta = read_json(tmp / META_NAME)
    old_state = read_meta(final).get("sha256", {}).get(STATE_NAME)
    either = {**new_meta, "sha256": {**new_meta["sha256"], STATE_NAME: [old_state, new_meta["sha256"][STATE_NAME]]}}
    atomic_write(final / META_NAME, lambda path: path.write_text(json.dumps(either, indent=2)))
    for name in sorted(p.name for p in tmp.iterdir() if p.name not in (STATE_NAME, META_NAME)):
        os.replace(tmp / name, final / name)
    os.replace(tmp / STATE_NAME, final / STATE_NAME)
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


def _recorded_sha256(checkpoint: Path, name: str) -> str | None:
    """The sha256 a checkpoint recorded for one of its files (None: written before checksums were recorded)."""
    if name == WEIGHTS_NAME:
        return read_json(checkpoint / "config.json").get("weights_sha256")
    return read_meta(checkpoint).get("sha256", {}).get(name)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_NAME
    expected = _recorded_sha256(checkpoint, STATE_NAME)
    if expected is not None:
        check_sha256(path, expected, "resume from another checkpoint of the run")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise DamagedFileError(f"{path} is damaged: not a readable training state ({str(error)[:200]})") from None


def load_checkpoint_state(
    checkpoint: Path, *, ema: bool = False, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """A checkpoint's weights (or EMA weights), checked against their recorded sha256."""
    name = EMA_NAME if ema else WEIGHTS_NAME
    path = checkpoint / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found" + (" (the run kept no EMA)" if ema else ""))
    return load_weights_file(path, sha256=_recorded_sha256(checkpoint, name), device=device)


def load_weights(model: nn.Module, checkpoint: Path, *, ema: bool = False) -> None:
    """Load a checkpoint's weights (or EMA weights) into ``model``, checked against their recorded sha256."""
    state = load_checkpoint_state(checkpoint, ema=ema, device=next(model.parameters()).device)
    load_state_checked(model, state, checkpoint / (EMA_NAME if ema else WEIGHTS_NAME))


def read_meta(checkpoint: Path) -> dict[str, Any]:
    return read_json(checkpoint / META_NAME)
