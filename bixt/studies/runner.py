"""Running a study: every (cell, seed) an ordinary `bixt train` process in a run directory of its own, resumably.

Layout under the root (default ``runs/studies``; ``--quick`` uses ``runs/studies-quick`` so a quick pass never
touches real runs)::

    ROOT/STUDY/CELL/seed-S/          the run directory (config.yaml, metrics.jsonl, checkpoints/), named by cell and
                                     seed, so two cells can never share one, whenever they start
    ROOT/STUDY/CELL/seed-S.log       the process's output, appended across attempts
    ROOT/STUDY/CELL/seed-S.json      the runner's record: status, exit code, wall time, command, bixt commit

A cell whose record says ``finished`` is never rerun. Any other cell is (re)started: from its newest checkpoint when
its run directory has one, else from scratch (a directory that holds no checkpoint is moved aside, not deleted).
A cell with ``init_from`` runs after every other cell, started from its source cell's run of the same seed; when
that run has not finished, the cell is recorded as ``blocked`` and not started.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bixt.fileio import atomic_write
from bixt.studies.spec import Study, StudyError, override_args

DEFAULT_ROOT = Path("runs/studies")
QUICK_ROOT = Path("runs/studies-quick")
RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class CellRun:
    study: str
    cell: str
    seed: int
    run_dir: Path
    overrides: dict[str, Any]
    source: Path | None = None  # the run directory this run starts from (its cell's init_from), if any

    @property
    def record_path(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + RECORD_SUFFIX)

    @property
    def log_path(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + ".log")


@dataclass
class CellRecord:
    """What the runner knows of one cell's process; the run's own files hold everything else."""

    status: str  # finished | failed | interrupted | blocked (its source run had not finished)
    returncode: int
    wall_s: float  # summed over attempts
    attempts: int
    command: list[str]
    commit: str
    threads: int
    finished_at: str
    cpu: str = ""  # the CPU's model name (timings mean little without it)
    # the overrides the run started with; a resumed run keeps its saved config, so later changes to the spec do not
    # apply to it (None: a record written before this field)
    overrides: dict[str, Any] | None = None


def plan(study: Study, *, root: Path, seeds: tuple[int, ...] | None, cells: tuple[str, ...] | None, quick: bool):
    """The (cell, seed) runs asked for, in declaration order."""
    chosen = cells if cells else tuple(study.cells)
    runs = []
    for cell in chosen:
        overrides = study.cell_overrides(cell, quick=quick)
        source_cell = study.cell_source(cell)
        own = study.cell_seeds(cell)
        for seed in seeds if seeds is not None else (own[:1] if quick else own):
            source = root / study.name / source_cell / f"seed-{seed}" if source_cell else None
            extra = {"model.init_from": str(source)} if source else {}
            runs.append(
                CellRun(
                    study.name, cell, seed, root / study.name / cell / f"seed-{seed}", {**overrides, **extra}, source
                )
            )
    if len({run.run_dir for run in runs}) != len(runs):
        raise StudyError(f"study {study.name!r}: a cell or seed is listed twice")
    return runs


def read_record(run: CellRun) -> CellRecord | None:
    if not run.record_path.is_file():
        return None
    try:
        return CellRecord(**json.loads(run.record_path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise StudyError(f"{run.record_path}: damaged runner record ({error}); delete it to rerun the cell") from error


def write_record(run: CellRun, record: CellRecord) -> None:
    run.record_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(run.record_path, lambda tmp: tmp.write_text(json.dumps(asdict(record), indent=1) + "\n"))


def bixt_commit() -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_command(study: Study, run: CellRun, threads: int) -> list[str]:
    """The cell's `bixt train` command. A cell with a checkpoint resumes: its saved config then decides the rest."""
    train = [sys.executable, "-m", "bixt", "train"]
    if has_checkpoint(run):
        return [*train, "--resume", str(run.run_dir), "--threads", str(threads)]
    recipe = str(study.cell_recipe(run.cell))
    place = ["--output_dir", str(run.run_dir.parent), "--run_name", run.run_dir.name]
    return [
        *train,
        "-c",
        recipe,
        "--seed",
        str(run.seed),
        *override_args(run.overrides),
        "--threads",
        str(threads),
        *place,
    ]


def has_checkpoint(run: CellRun) -> bool:
    checkpoints = run.run_dir / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.glob("step-*"))


def _set_aside(run: CellRun) -> None:
    """A run directory without a checkpoint (killed before its first one): keep it, renamed, and start afresh."""
    if run.run_dir.exists() and not has_checkpoint(run):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run.run_dir.rename(run.run_dir.with_name(f"{run.run_dir.name}.aborted-{stamp}-{os.getpid()}"))


def _blocked(run: CellRun, commit: str, threads: int) -> CellRecord | None:
    """A record saying why ``run`` cannot start (its source run has not finished), or None when it can."""
    if run.source is None or has_checkpoint(run):
        return None
    source_record = read_record(CellRun(run.study, run.source.parent.name, run.seed, run.source, {}))
    if source_record is not None and source_record.status == "finished":
        return None
    record = CellRecord(
        status="blocked",
        returncode=-1,
        wall_s=0.0,
        attempts=0,
        command=[f"# starts from {run.source}, which has not finished"],
        commit=commit,
        threads=threads,
        finished_at=time.strftime("%Y-%m-%d %H:%M:%S"),
        cpu=cpu_name(),
    )
    write_record(run, record)
    return record


def run_cell(study: Study, run: CellRun, *, threads: int, commit: str) -> CellRecord:
    blocked = _blocked(run, commit, threads)
    if blocked is not None:
        return blocked
    previous = read_record(run)
    _set_aside(run)
    command = train_command(study, run, threads)
    # a resumed run keeps the command and overrides it started with (this attempt's `--resume` line is in the log)
    started = previous if has_checkpoint(run) and previous is not None and previous.attempts > 0 else None
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    # Idle OpenMP threads sleep instead of spinning: two cells share the cores (see the Makefile).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    with run.log_path.open("a") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    status = "finished" if returncode == 0 else "interrupted" if returncode in (-2, 130, -15, 143) else "failed"
    record = CellRecord(
        status=status,
        returncode=returncode,
        wall_s=round(time.perf_counter() - start + (previous.wall_s if previous else 0.0), 1),
        attempts=(previous.attempts if previous else 0) + 1,
        command=started.command if started else command,
        commit=commit,
        threads=threads,
        finished_at=time.strftime("%Y-%m-%d %H:%M:%S"),
        cpu=cpu_name(),
        overrides=started.overrides if started else run.overrides,
    )
    write_record(run, record)
    return record


def run_study(
    study: Study,
    *,
    root: Path,
    quick: bool = False,
    seeds: tuple[int, ...] | None = None,
    cells: tuple[str, ...] | None = None,
    jobs: int = 1,
    threads: int | None = None,
    echo=print,
) -> list[tuple[CellRun, CellRecord]]:
    """Run every unfinished (cell, seed), `jobs` at a time, each on `threads` cores (default: the cores / jobs)."""
    if jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {jobs}")
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    runs = plan(study, root=root, seeds=seeds, cells=cells, quick=quick)
    commit = bixt_commit()
    outcome: list[tuple[CellRun, CellRecord]] = []
    todo = []
    for run in runs:
        record = read_record(run)
        if record is not None and record.status == "finished":
            outcome.append((run, record))
            echo(f"{run.cell} seed {run.seed}: finished before, kept ({run.run_dir})")
        else:
            todo.append(run)
    echo(f"study {study.name}: {len(todo)} of {len(runs)} runs to do, {jobs} at a time on {threads} thread(s) each")

    def one(run: CellRun) -> tuple[CellRun, CellRecord]:
        echo(f"{run.cell} seed {run.seed}: started -> {run.run_dir}")
        record = run_cell(study, run, threads=threads, commit=commit)
        echo(f"{run.cell} seed {run.seed}: {record.status} (exit {record.returncode}, {record.wall_s:.0f} s)")
        return run, record

    # Cells that start from another cell's run go in a second wave, once every first-wave run has ended.
    for wave in ([run for run in todo if run.source is None], [run for run in todo if run.source is not None]):
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            outcome += pool.map(one, wave)
    return outcome
