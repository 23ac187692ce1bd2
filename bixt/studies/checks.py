"""A study's checks of finished runs (``checks:`` in the study file), computed once per checkpoint and kept.

A check re-evaluates a run's last checkpoint, which takes minutes per run, so ``bixt study report`` would otherwise
repeat every check on every report. Each result is ``RUN_DIR/checks/NAME-KEY.json``, where KEY hashes the
checkpoint evaluated (its step and the checksum its meta records) and the check's parameters: a run trained further
(a newer last checkpoint) or a check with other parameters gets a new file, and an old result is never replaced.
Files are written whole or not at all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bixt.analysis.point_order import check_point_order
from bixt.data.generated import params_key
from bixt.engine.checkpoint import read_meta, resolve_checkpoint
from bixt.fileio import atomic_write

CHECKS_DIR = "checks"


def point_order(run_dir: Path, *, limit: int) -> dict[str, Any]:
    """The point-order check of the run's last checkpoint on its first `limit` test clouds, from its file if kept."""
    checkpoint = resolve_checkpoint(run_dir, prefer="last")
    identity = {"checkpoint": checkpoint.name, "sha256": read_meta(checkpoint).get("sha256")}
    key = params_key({**identity, "limit": limit})[:12]
    path = run_dir / CHECKS_DIR / f"point-order-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = dataclasses.asdict(check_point_order(checkpoint, limit=limit))
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(result, indent=1) + "\n"))
    return result
