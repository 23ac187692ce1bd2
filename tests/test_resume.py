"""`bixt train --resume RUN` reads the run: the README's command continues a stopped run to the weights of an
uninterrupted one; changes that would make the run something its checkpoints are not are refused with nothing on
disk changed; safe changes are recorded; a dangling `last` link, half-written leftovers and a kill between the
checkpoint's last file operations all resume; a finished run says so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_helpers import (  # noqa: F401 (autouse fixture)
    restore_threads,
    tiny_config,
    tiny_images,
    write_tiny_listops_recipe,
)
from safetensors.torch import load_file

from bixt.cli import main as cli_main
from bixt.engine.checkpoint import resolve_checkpoint
from bixt.engine.run import fit


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_tiny_listops_recipe(tmp_path_factory.mktemp("recipe"))


def _snapshot(run_dir: Path) -> dict[str, str]:
    """Every file and link of a run: content hash or link target."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        key = str(path.relative_to(run_dir))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def _stop_after(run_dir: Path, step: int) -> None:
    """Leave a finished run as a run killed right after its checkpoint of ``step``."""
    checkpoints = run_dir / "checkpoints"
    for path in checkpoints.glob("step-*"):
        if int(path.name[5:]) > step:
            shutil.rmtree(path)
    for link in ("last", "best"):
        (checkpoints / link).unlink()
    os.symlink(f"step-{step:08d}", checkpoints / "last")


@pytest.fixture(scope="module")
def finished_run(recipe, tmp_path_factory) -> Path:
    """One uninterrupted CLI run of the recipe, for the others to compare against (copy it before changing it)."""
    out = tmp_path_factory.mktemp("runs")
    assert cli_main(["train", "-c", str(recipe), "--output_dir", str(out), "--run_name", "full"]) == 0
    return out / "full"


def test_readme_resume_command_continues_the_run(finished_run, tmp_path, capsys):
    run = tmp_path / "stopped"
    shutil.copytree(finished_run, run, symlinks=True)
    _stop_after(run, 3)
    assert cli_main(["train", "--resume", str(run)]) == 0  # exactly the README's command: no recipe, no overrides
    assert resolve_checkpoint(run, prefer="last").name == "step-00000008"
    _assert_identical(
        _weights(run / "checkpoints" / "step-00000008"), _weights(finished_run / "checkpoints" / "step-00000008")
    )
    assert (run / "config.yaml").read_text() == (finished_run / "config.yaml").read_text()
    assert "final evaluation" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "key", "saved", "new"),
    [
        (["--model.options", "{embed_dim: 32, depth: 1, num_heads: 2, num_latents: 4}"], "model.options", "16", "32"),
        (["--model.name", "transformer_lra_listops"], "model.name", "bixt_lra_listops", "transformer_lra_listops"),
        (["--data.name", "mnist"], "data.name", "listops", "mnist"),
        (["--task", "retrieval"], "task", "classification", "retrieval"),
        (["--batch_size", "16"], "batch_size", "8", "16"),
    ],
)
def test_unsafe_override_is_refused_and_nothing_changes(finished_run, tmp_path, capsys, override, key, saved, new):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    _stop_after(run, 3)
    before = _snapshot(run)
    assert cli_main(["train", "--resume", str(run), *override]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.strip().startswith(f"{key}:"))
    assert saved in line.split("in the run")[0] and new in line.split("in the run")[1], line
    assert "cannot resume" in err and "Traceback" not in err
    assert _snapshot(run) == before  # a failed resume changes nothing on disk


def test_safe_overrides_are_recorded(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    assert (
        cli_main(["train", "--resume", str(run), "--schedule.epochs", "3", "--threads", "1", "--progress=false"]) == 0
    )
    assert resolve_checkpoint(run, prefer="last").name == "step-00000012"
    assert "epochs: 3" in (run / "config.yaml").read_text()
    (entry,) = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert entry["step"] == 8 and entry["from"].endswith("step-00000008")
    assert entry["changes"] == {"schedule.epochs": {"was": 2, "now": 3}}


def test_resuming_a_finished_run_says_so_and_changes_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    before = _snapshot(run)
    assert cli_main(["train", "--resume", str(run), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "has already finished: 2 of 2 epochs, 8 steps" in err and "--schedule.epochs 3" in err
    assert _snapshot(run) == before


def test_a_run_killed_before_its_first_checkpoint_starts_again(finished_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(finished_run / "config.yaml", run / "config.yaml")
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "epoch": 0.25, "loss": 9.0}\n')
    assert cli_main(["train", "--resume", str(run)]) == 0
    _assert_identical(
        _weights(run / "checkpoints" / "step-00000008"), _weights(finished_run / "checkpoints" / "step-00000008")
    )
    losses = [json.loads(line).get("loss") for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert 9.0 not in losses  # the dead run's record was dropped, not mixed in


def test_dangling_last_link_and_half_written_leftovers(tmp_path):
    data = tiny_images()
    reference = fit(tiny_config(str(tmp_path), "--run_name", "reference"), train_set=data, eval_set=data)
    run = fit(
        tiny_config(str(tmp_path), "--run_name", "r", "--checkpoint_every_steps", "1", "--keep_checkpoints", "99"),
        train_set=data,
        eval_set=data,
    ).run_dir
    checkpoints = run / "checkpoints"
    _stop_after(run, 5)
    (checkpoints / "last").unlink()
    os.symlink("step-00000006", checkpoints / "last")  # dangling: step 6 was being replaced when the run died
    leftover = checkpoints / ".step-00000006.k3x9.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    resumed = fit(tiny_config(str(tmp_path), "--resume", str(run)), train_set=data, eval_set=data)
    assert not leftover.exists()
    _assert_identical(_weights(resumed.last_checkpoint), _weights(reference.last_checkpoint))
    (entry,) = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert entry["step"] == 5


# The process dies (as on kill -9) at one file operation of a checkpoint save, then a resume must reach the weights
# of an uninterrupted run.
_DIE_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
import bixt.engine.checkpoint as checkpoint
from engine_helpers import tiny_config, tiny_images
from bixt.engine.run import fit

where, step = sys.argv[1], int(sys.argv[2])
real_replace, real_link = checkpoint.os.replace, checkpoint.atomic_symlink

meta_replaced = []

def replace(src, dst):
    # Between the last two file operations of saving step 6 a second time (at the end of epoch 1): the training
    # state swapped, the final metadata not yet (the first metadata write is the one that accepts either state).
    if where == "same-step" and str(dst).endswith("step-%08d/meta.json" % step):
        meta_replaced.append(dst)
        if len(meta_replaced) == 2:
            os._exit(9)
    return real_replace(src, dst)

def link(path, points_to):
    # After the new checkpoint is renamed into place, before `last` points at it.
    if where == "link" and points_to == "step-%08d" % step:
        os._exit(9)
    return real_link(path, points_to)

checkpoint.os.replace, checkpoint.atomic_symlink = replace, link
data = tiny_images()
fit(tiny_config({out!r}, "--run_name", "died", "--checkpoint_every_steps", "1"), train_set=data, eval_set=data)
"""


@pytest.mark.parametrize(("where", "step"), [("link", 3), ("same-step", 6)])
def test_kill_between_the_checkpoints_last_file_operations(tmp_path, where, step):
    script = tmp_path / "die.py"
    script.write_text(_DIE_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    died = subprocess.run([sys.executable, str(script), where, str(step)], env=env, timeout=600, check=False)
    assert died.returncode == 9
    data = tiny_images()
    resumed = fit(tiny_config(str(tmp_path), "--resume", str(tmp_path / "died")), train_set=data, eval_set=data)
    reference = fit(tiny_config(str(tmp_path), "--run_name", "reference"), train_set=data, eval_set=data)
    _assert_identical(_weights(resumed.last_checkpoint), _weights(reference.last_checkpoint))
