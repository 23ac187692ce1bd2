"""Ctrl-C / SIGTERM: the run stops at the next step with a checkpoint, prints the exact resume command and exits
non-zero without a traceback; the printed command continues the run; a second Ctrl-C exits at once;
`--max_steps` ends a run early like any run (evaluated, checkpointed)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import restore_threads, tiny_config, tiny_images, write_tiny_listops_recipe  # noqa: F401

from bixt.engine.checkpoint import read_meta, resolve_checkpoint
from bixt.engine.run import fit

REPO = Path(__file__).parent.parent


def _train_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [r["step"] for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "train"]


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    recipe = write_tiny_listops_recipe(tmp_path, epochs=50)  # far longer than the test waits
    command = [sys.executable, "-m", "bixt", "train", "-c", str(recipe), "--output_dir", str(tmp_path / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [*command, "--run_name", "r"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    run_dir = tmp_path / "runs" / "r"
    deadline = time.time() + 300
    while len(_train_steps(run_dir)) < 2:  # training is under way
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no training step within 5 minutes"
        time.sleep(0.05)
    return process, run_dir


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_at_a_step_with_a_checkpoint_and_the_resume_command(tmp_path, signum):
    process, run_dir = _start(tmp_path)
    process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signum
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    checkpoint = resolve_checkpoint(run_dir, prefer="last")
    stopped_at = read_meta(checkpoint)["step"]
    assert stopped_at == _train_steps(run_dir)[-1]  # the checkpoint holds the last step trained, nothing lost
    assert f"stopped by {signal.Signals(signum).name} after step {stopped_at}; checkpoint {checkpoint}" in err
    command = err.split("resume with: ")[1].splitlines()[0]
    assert command == f"bixt train --resume {run_dir}"
    # The printed command continues the run (two more steps, to keep the test short).
    argv = [sys.executable, "-m", "bixt", *shlex.split(command)[1:]]  # `bixt` as this test's interpreter runs it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    resumed = subprocess.run(
        [*argv, "--max_steps", str(stopped_at + 2)], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _train_steps(run_dir) == list(range(1, stopped_at + 3))


# The second signal must come after the first was handled (two pending signals of one kind arrive as one).
_TWICE_SCRIPT = """
import os, signal, time
from bixt.engine.interrupt import StopRequests

with StopRequests() as requests:
    os.kill(os.getpid(), signal.SIGINT)
    while requests.signum is None:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)
print("not reached")
"""


def test_a_second_interrupt_exits_at_once():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.time()
    done = subprocess.run([sys.executable, "-c", _TWICE_SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 130 and time.time() - started < 30
    assert "SIGINT again: exiting now, without a checkpoint" in done.stderr and "Traceback" not in done.stderr
    assert "not reached" not in done.stdout


def test_max_steps_ends_the_run_evaluated_and_checkpointed(tmp_path):
    data = tiny_images()
    result = fit(tiny_config(str(tmp_path), "--run_name", "short", "--max_steps", "4"), train_set=data, eval_set=data)
    assert read_meta(result.last_checkpoint)["step"] == 4
    assert _train_steps(result.run_dir) == [1, 2, 3, 4]
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [4]
    assert result.metrics["top1"] == records[-1]["top1"]
