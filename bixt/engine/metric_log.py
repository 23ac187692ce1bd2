"""Where a run's numbers go: JSON lines (always) and TensorBoard (optional), from rank 0 only. (The console's
progress lines are ``bixt.engine.progress``; the file's format and reader are ``bixt.run_metrics``.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bixt.fileio import atomic_write
from bixt.run_metrics import METRICS_NAME, read_metrics


class MetricLog:
    """Appends ``{"kind": "train" | "eval", "step": ..., "epoch": ..., <values>}`` records to metrics.jsonl.

    On any rank but 0 (``enabled=False``) every call does nothing, so callers need no rank checks.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = run_dir / METRICS_NAME
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError(
                    "tensorboard logging needs the tensorboard package: pip install tensorboard"
                ) from error
            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def write(self, kind: str, *, step: int, epoch: float, **values: float) -> None:
        if not self.enabled:
            return
        record: dict[str, Any] = {"kind": kind, "step": step, "epoch": round(epoch, 4), "time": round(time.time(), 2)}
        record.update(values)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def drop_after(self, step: int) -> None:
        """Forget the records of steps after `step`: a resumed run logs them again from its checkpoint on."""
        if not self.enabled or not self.path.exists():
            return
        kept = [record for record in read_metrics(self.path) if record["step"] <= step]
        atomic_write(self.path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
