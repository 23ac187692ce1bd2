"""Run directories never collide: two runs started in the same second get two directories, a chosen name that is
taken is refused (the old run untouched), and an output directory that cannot be written fails before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

import bixt.engine.run as engine_run
from bixt.engine.config import ConfigError
from bixt.engine.run import fit
from bixt.engine.run_dir import RunLock

# Both processes see the same clock second, as two seeds started side by side by a user or a study runner do.
_SAME_SECOND_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import bixt.engine.run as engine_run
from engine_helpers import tiny_config, tiny_images
from bixt.engine.run import fit

engine_run.time.strftime = lambda fmt, *args: "20260101-120000"
data = tiny_images()
result = fit(tiny_config({out!r}, "--seed", sys.argv[1], "--checkpoint_every_steps", "1"),
             train_set=data, eval_set=data, name_hint="tiny")
print("RUN_DIR", result.run_dir)
"""


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SAME_SECOND_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "runs")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen([sys.executable, str(script), seed], stdout=subprocess.PIPE, text=True, env=env)
        for seed in ("1", "2")
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    run_dirs = sorted(Path(line.split()[1]) for out in outputs for line in out.splitlines() if line[:7] == "RUN_DIR")
    assert [d.name for d in run_dirs] == ["tiny-20260101-120000", "tiny-20260101-120000-2"]
    seeds = set()
    for run_dir in run_dirs:
        # Each directory holds exactly one run: its own config, one record per step, its own checkpoints.
        seeds.add(next(line for line in (run_dir / "config.yaml").read_text().splitlines() if line[:5] == "seed:"))
        assert [r["step"] for r in _records(run_dir) if r["kind"] == "train"] == list(range(1, 13))
        assert (run_dir / "checkpoints" / "last").resolve().name == "step-00000012"
    assert seeds == {"seed: 1", "seed: 2"}


def test_a_taken_default_name_gets_a_suffix(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_run.time, "strftime", lambda fmt, *args: "20260101-120000")
    data = tiny_images()
    first = fit(tiny_config(str(tmp_path), "--schedule.epochs", "1"), train_set=data, eval_set=data, name_hint="x")
    second = fit(tiny_config(str(tmp_path), "--schedule.epochs", "1"), train_set=data, eval_set=data, name_hint="x")
    assert (first.run_dir.name, second.run_dir.name) == ("x-20260101-120000", "x-20260101-120000-2")
    assert len(_records(first.run_dir)) == len(_records(second.run_dir)) == 7  # 6 steps + 1 evaluation each


def test_an_existing_run_name_is_refused_and_the_old_run_kept(tmp_path):
    data = tiny_images()
    fit(tiny_config(str(tmp_path), "--run_name", "r", "--schedule.epochs", "1"), train_set=data, eval_set=data)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"run directory .*/r already exists.*bixt train --resume .*/r"):
        fit(tiny_config(str(tmp_path), "--run_name", "r", "--seed", "7"), train_set=data, eval_set=data)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert after == before
    assert len(_records(tmp_path / "r")) == 7


def test_output_dir_that_is_a_file_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory")
    monkeypatch.setattr(engine_run, "build_model", lambda config: pytest.fail("the model was built"))
    with pytest.raises(ConfigError, match=r"output_dir .*runs/sub cannot be made: .*runs is a file"):
        fit(tiny_config(str(blocker / "sub")), train_set=tiny_images(), eval_set=tiny_images())


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any directory")
def test_unwritable_output_dir_fails_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match=r"output_dir .* is not writable"):
        fit(tiny_config(str(locked / "runs")), train_set=tiny_images(), eval_set=tiny_images())


def test_a_run_directory_in_use_is_refused(tmp_path):
    (tmp_path / "busy").mkdir()
    held = RunLock(tmp_path / "busy").acquire()
    try:
        with pytest.raises(ConfigError, match=rf"busy is in use by process {os.getpid()}"):
            RunLock(tmp_path / "busy").acquire()
    finally:
        held.release()
    RunLock(tmp_path / "busy").acquire().release()  # free again once released
