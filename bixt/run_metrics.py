"""A run's metric log as a file: its name in the run directory and how to read it back.

The engine writes it (``bixt.engine.metric_log``); the analyses and the studies read it. Living outside both, it
lets them share the format without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_NAME = "metrics.jsonl"  # one JSON record per line: {"kind": "train" | "eval", "step", "epoch", "time", ...}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, skipping a torn last line (a run killed mid-write)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
