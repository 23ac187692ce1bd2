"""A study's extra evaluations: the last checkpoint of each finished run of some cells, evaluated again on other data
of its data set (e.g. ListOps expressions longer than those it was trained on), one `bixt eval` process each.

Each result is ``RUN_DIR/evaluations/SET-KEY.json``, where KEY hashes what was evaluated (the set's data options and
the item limit): a result is computed once and kept, and a changed set writes a new file instead of replacing the
result of the old one. `bixt eval` writes the file whole or not at all, so an interrupted evaluation leaves nothing
and is simply run again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bixt.data.generated import params_key
from bixt.studies.runner import CellRecord, CellRun
from bixt.studies.spec import Evaluations, EvaluationSet, Study

EVALUATIONS_DIR = "evaluations"


def evaluation_key(options: dict[str, Any], limit: int | None) -> str:
    return params_key({"options": options, "limit": limit})[:12]


def evaluation_path(run_dir: Path, evaluations: Evaluations, evaluation: EvaluationSet, *, quick: bool) -> Path:
    key = evaluation_key(evaluations.options(evaluation, quick=quick), evaluations.limit)
    return run_dir / EVALUATIONS_DIR / f"{evaluation.name}-{key}.json"


def read_evaluation(path: Path) -> dict[str, Any] | None:
    """A stored result, or None when it has not been computed."""
    return json.loads(path.read_text()) if path.is_file() else None


def eval_command(run: CellRun, evaluations: Evaluations, evaluation: EvaluationSet, *, quick: bool) -> list[str]:
    """The `bixt eval` command of one evaluation: the run's last checkpoint, the set's data options, its JSON file."""
    limit = ["--limit", str(evaluations.limit)] if evaluations.limit else []
    return [
        sys.executable,
        "-m",
        "bixt",
        "eval",
        str(run.run_dir / "checkpoints" / "last"),
        "--data-options",
        json.dumps(evaluations.options(evaluation, quick=quick)),
        *limit,
        "--json",
        str(evaluation_path(run.run_dir, evaluations, evaluation, quick=quick)),
    ]


def run_evaluations(
    study: Study,
    outcome: list[tuple[CellRun, CellRecord]],
    *,
    quick: bool,
    threads: int,
    echo=print,
) -> list[str]:
    """Every missing evaluation of the finished runs in `outcome`, one at a time on `threads` cores; returns the
    ones that failed, named (each process's output is appended to its run's log)."""
    evaluations = study.evaluations
    if evaluations is None:
        return []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    failed = []
    for run, record in outcome:
        if run.cell not in evaluations.cells or record.status != "finished":
            continue
        for evaluation in evaluations.sets:
            name = f"{run.cell} seed {run.seed}, evaluation {evaluation.name}"
            if evaluation_path(run.run_dir, evaluations, evaluation, quick=quick).is_file():
                echo(f"{name}: done before, kept")
                continue
            command = eval_command(run, evaluations, evaluation, quick=quick)
            with run.log_path.open("a") as log:
                log.write(f"\n$ {' '.join(command)}\n")
                log.flush()
                done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
            returncode = done.returncode
            echo(f"{name}: {'done' if returncode == 0 else f'failed (exit {returncode}, see {run.log_path})'}")
            if returncode != 0:
                failed.append(name)
    return failed
