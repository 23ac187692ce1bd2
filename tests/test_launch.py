"""`processes` of a recipe: what ``auto`` picks where, and that `bixt train` launches (or does not launch) torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import bixt.engine.launch as launch
from bixt.commands.train import main as train_main
from bixt.data import is_fetched
from bixt.engine.launch import choose_processes

CPU, CUDA = torch.device("cpu"), torch.device("cuda:0")


@pytest.mark.parametrize(
    "requested, device, avx512, cores, processes, threads",
    [
        ("auto", CPU, True, 2, 2, 1),  # measured: 0.78-0.92x the wall time on an AMD EPYC Zen 4
        ("auto", CPU, True, 16, 2, 8),
        ("auto", CPU, False, 2, 1, None),  # measured: 1.05x on an AMD EPYC Zen 3, a second thread does as well
        ("auto", CPU, True, 1, 1, None),
        ("auto", CUDA, True, 16, 1, None),
        (3, CPU, False, 6, 3, 2),
        (1, CPU, True, 2, 1, None),
    ],
)
def test_choose_processes(requested, device, avx512: bool, cores: int, processes: int, threads) -> None:
    choice = choose_processes(requested, device, avx512, cores)
    assert (choice.processes, choice.threads) == (processes, threads)
    assert f"processes {processes}" in choice.describe() and f"asked: {requested}" in choice.describe()


class _FitCalled(Exception):
    pass


def _recorder(calls: list) -> object:
    def record(choice, argv, *, set_threads):
        calls.append((choice, argv, set_threads))
        return 0

    return record


RECIPE = ["-c", str(Path(__file__).parents[1] / "configs" / "fashion-mnist.yaml"), "--data.fetch", "false"]


def test_train_launches_torchrun_where_processes_come_to_two(monkeypatch, capsys, tmp_path) -> None:
    calls: list = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(launch, "launch_processes", _recorder(calls))
    monkeypatch.setattr(launch, "usable_cores", lambda: 2)
    argv = [*RECIPE, "--processes", "2", "--output_dir", str(tmp_path)]
    assert train_main(argv) == 0
    ((choice, passed, set_threads),) = calls
    assert (choice.processes, choice.threads, passed, set_threads) == (2, 1, argv, True)
    assert "processes 2 of 1 thread(s) (asked: 2; as configured)" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # the launcher itself writes nothing: its processes make the run

    calls.clear()
    assert train_main([*argv, "--threads", "2"]) == 0  # threads the user set are theirs
    assert calls[0][2] is False


def test_train_under_torchrun_does_not_launch_again(monkeypatch, tmp_path) -> None:
    # Each process torchrun started runs `bixt train` with the same recipe; it must train, not launch another torchrun.
    import bixt.engine.run

    calls: list = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(launch, "launch_processes", _recorder(calls))

    def fit(*args, **kwargs):
        raise _FitCalled

    monkeypatch.setattr(bixt.engine.run, "fit", fit)
    with pytest.raises(_FitCalled):
        train_main([*RECIPE, "--processes", "2", "--output_dir", str(tmp_path)])
    assert calls == []


def test_auto_reads_the_cpu_flags(monkeypatch, tmp_path) -> None:
    import bixt.precision
    from bixt.engine.config import parse_config

    config = parse_config([*RECIPE, "--processes", "auto", "--device", "cpu"])
    monkeypatch.setattr(launch, "usable_cores", lambda: 2)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(bixt.precision, "CPUINFO", cpuinfo)
    for flags, processes in (("fpu avx2 avx512f avx512_bf16", 2), ("fpu avx2", 1)):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert launch.plan_processes(config).processes == processes


@pytest.mark.slow
@pytest.mark.network_data
def test_two_processes_train_one_run(tmp_path) -> None:
    # The real launch: `bixt train --processes 2` starts torchrun, whose two processes train one run together.
    if not is_fetched("fashion-mnist"):
        pytest.skip("fashion-mnist not fetched (run `bixt data fetch fashion-mnist`)")
    argv = [
        *RECIPE, "--processes", "2", "--max_steps", "2", "--batch_size", "32", "--data.train_limit", "256",
        "--data.eval_limit", "64", "--progress", "false", "--output_dir", str(tmp_path), "--run_name", "two",
    ]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bixt", "train", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes 2 of" in done.stdout and "(asked: 2; as configured)" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["two"]
    saved = yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert saved["processes"] == 2  # what trained, so that a resume launches as many
    steps = [json.loads(line)["step"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2
