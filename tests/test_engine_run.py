"""Whole runs on tiny synthetic data: resume is bit-exact, a killed run resumes, NaN stops the run, bad configs fail
before training, and `bixt eval` reproduces the logged figures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)
from safetensors.torch import load_file

import bixt.engine.train as engine_train
from bixt.analysis.plots import plot_run_curve
from bixt.engine.checkpoint import read_meta, resolve_checkpoint
from bixt.engine.config import ConfigError
from bixt.engine.run import fit
from bixt.engine.train import NonFiniteLossError


def _weights(checkpoint: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(checkpoint / name)


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def _stochastic_config(out: Path, *extra: str):
    """Dropout, drop-path and an EMA make the run depend on the RNG state, which a resume must restore exactly."""
    from engine_helpers import TINY_BIXT

    options = TINY_BIXT[:-1] + ", drop_rate: 0.1, drop_path_rate: 0.1}"
    return tiny_config(str(out), "--model.options", options, "--ema_decay", "0.9", *extra)


def test_resume_equals_uninterrupted(tmp_path):
    data = tiny_images()
    full = fit(
        _stochastic_config(tmp_path, "--run_name", "full", "--checkpoint_every_steps", "1", "--keep_checkpoints", "99"),
        train_set=data,
        eval_set=data,
    )
    assert full.metrics["top1"] > 34  # better than chance (3 classes): the run trained
    # Resume mid-epoch (step 4 of 6 in epoch 1) into a fresh run directory.
    middle = full.run_dir / "checkpoints" / "step-00000004"
    resumed = fit(
        _stochastic_config(tmp_path, "--run_name", "resumed", "--resume", str(middle)),
        train_set=data,
        eval_set=data,
    )
    _assert_identical(_weights(full.last_checkpoint), _weights(resumed.last_checkpoint))
    _assert_identical(
        _weights(full.last_checkpoint, "ema.safetensors"), _weights(resumed.last_checkpoint, "ema.safetensors")
    )
    assert full.metrics == resumed.metrics
    # The weights moved after the resume point, so the equality above compares something.
    assert not torch.equal(_weights(middle)["head.fc.weight"], _weights(full.last_checkpoint)["head.fc.weight"])


def test_best_and_last_checkpoints_and_logs(tmp_path):
    data = tiny_images()
    result = fit(
        tiny_config(str(tmp_path), "--run_name", "r"), train_set=data, eval_set=data, learning_curve=plot_run_curve
    )
    links = tmp_path / "r" / "checkpoints"
    assert (links / "last").resolve() == result.last_checkpoint
    best_meta = read_meta(resolve_checkpoint(tmp_path / "r"))
    assert (
        best_meta["best_value"]
        == result.best_value
        == max(r["top1"] for r in map(json.loads, result.metrics_path.read_text().splitlines()) if r["kind"] == "eval")
    )
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 13))
    assert result.plot_path.stat().st_size > 1000
    assert not list(links.glob(".*tmp"))  # no temporary directories left behind
    assert (tmp_path / "r" / "config.yaml").read_text().count("bixt_ti_l64_p16s4") == 1


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = engine_train.compute_loss
    calls = {"n": 0}

    def loss_with_nan_at_step_5(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(engine_train, "compute_loss", loss_with_nan_at_step_5)
    data = tiny_images()
    config = tiny_config(str(tmp_path), "--run_name", "nan", "--checkpoint_every_steps", "2")
    with pytest.raises(NonFiniteLossError) as error:
        fit(config, train_set=data, eval_set=data)
    message = str(error.value)
    assert "non-finite loss" in message and "at step 5 " in message and "step-00000004" in message
    kept = resolve_checkpoint(tmp_path / "nan", prefer="last")
    assert kept.name == "step-00000004" and read_meta(kept)["step"] == 4
    assert torch.isfinite(torch.cat([w.flatten() for w in _weights(kept).values()])).all()


def test_config_errors_are_caught_before_training(tmp_path):
    data = tiny_images()
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="unknown model 'bixt_nonexistent'"):
        fit(tiny_config(str(out), "--model.name", "bixt_nonexistent"), train_set=data, eval_set=data)
    with pytest.raises(ConfigError, match=r"unknown option.*valid options"):
        fit(tiny_config(str(out), "--model.options", "{embed_dimm: 8}"), train_set=data, eval_set=data)
    with pytest.raises(ConfigError, match="not divisible"):
        fit(tiny_config(str(out), "--batch_size", "9", "--grad_accum_steps", "2"), train_set=data, eval_set=data)
    with pytest.raises(ConfigError, match="bixt data fetch fashion-mnist"):
        fit(tiny_config(str(out), "--data.name", "fashion-mnist", "--data.cache_dir", str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match="smaller than one global batch"):
        fit(tiny_config(str(out), "--batch_size", "64"), train_set=data, eval_set=data)
    # 16 px images padded to 18 px do not fit the tokenizer's stride of 4: found by a forward pass before training
    with pytest.raises(ConfigError, match=r"cannot take the data.*multiples of the tokenizer stride 4, got 18x18"):
        fit(tiny_config(str(out), "--augment.pad", "1"), train_set=data, eval_set=data)
    assert not out.exists()  # nothing was written: every check ran before the run directory was made


_KILLED_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)
from bixt.engine.run import fit

class Stalling(type(tiny_images())):
    # After three steps' worth of items (batch 8) the data loader hangs, as a run would when killed mid-epoch.
    fetched = 0
    def __getitem__(self, index):
        Stalling.fetched += 1
        if Stalling.fetched > 3 * 8:
            time.sleep(3600)
        return super().__getitem__(index)

data = tiny_images()
fit(tiny_config({out!r}, "--run_name", "killed", "--checkpoint_every_steps", "1"),
    train_set=Stalling(*data.tensors), eval_set=data)
"""


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_KILLED_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    process = subprocess.Popen([sys.executable, str(script)])
    last = tmp_path / "killed" / "checkpoints" / "last"
    deadline = time.time() + 300
    try:
        while not (last.exists() and last.resolve().name == "step-00000003"):
            assert process.poll() is None, "the training process ended before it was killed"
            assert time.time() < deadline, "no checkpoint of step 3 within 5 minutes"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    data = tiny_images()
    resumed = fit(tiny_config(str(tmp_path), "--resume", str(tmp_path / "killed")), train_set=data, eval_set=data)
    assert resumed.run_dir == tmp_path / "killed"  # resuming a run directory continues it in place
    reference = fit(tiny_config(str(tmp_path), "--run_name", "reference"), train_set=data, eval_set=data)
    _assert_identical(_weights(resumed.last_checkpoint), _weights(reference.last_checkpoint))

    # The log reads as if the run had never stopped: what the killed process logged after step 3 is not repeated.
    def logged(run: str) -> list[tuple[str, int]]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(record["kind"], record["step"]) for record in map(json.loads, lines)]

    assert logged("killed") == logged("reference")
    assert logged("killed")[-1][1] == 12


@pytest.mark.network_data
def test_bixt_eval_reproduces_the_logged_figures(tmp_path, capsys):
    from bixt.cli import main as cli_main
    from bixt.data import is_fetched
    from bixt.engine.evaluation import evaluate_checkpoint

    if not is_fetched("fashion-mnist"):
        pytest.skip("fashion-mnist is not fetched (run `bixt data fetch fashion-mnist`)")
    argv = [
        "-c", str(Path(__file__).parent.parent / "configs" / "fashion-mnist.yaml"),
        "--model.options", "{img_size: 32, in_chans: 1, num_classes: 10, embed_dim: 16, depth: 1, num_heads: 2}",
        "--data.train_limit", "64", "--data.eval_limit", "50", "--batch_size", "16", "--schedule.epochs", "1",
        "--threads", "1", "--progress", "false", "--output_dir", str(tmp_path), "--run_name", "fm",
        "--processes", "1",  # one process, as `bixt eval`: two shard the test set and sum its loss in another order
    ]  # fmt: skip
    assert cli_main(["train", *argv]) == 0
    report = evaluate_checkpoint(tmp_path / "fm")
    assert report.num_items == 50 and report.step == 4
    assert report.logged and report.metrics.keys() == report.logged.keys()
    for key, value in report.metrics.items():
        assert value == pytest.approx(report.logged[key], abs=1e-9), key
    capsys.readouterr()
    assert cli_main(["eval", str(tmp_path / "fm")]) == 0
    out = capsys.readouterr().out
    assert f"top1             {report.metrics['top1']:.4f}   (logged at this step: {report.logged['top1']:.4f})" in out
    # Other data of the same data set: the options change what is loaded, so nothing logged is shown beside it.
    result = tmp_path / "other.json"
    assert cli_main(["eval", str(tmp_path / "fm"), "--data-options", '{"max_items": 10}', "--json", str(result)]) == 2
    assert "max_items" in capsys.readouterr().err and not result.exists()  # a bad option: an error, no file
    assert cli_main(["eval", str(tmp_path / "fm"), "--limit", "20", "--data-options", "{}", "--json", str(result)]) == 0
    written = json.loads(result.read_text())
    assert written["num_items"] == 20 and written["metrics"].keys() == report.metrics.keys()


def test_merged_options_merge_nested_mappings_key_by_key() -> None:
    from bixt.engine.evaluation import merged_options

    base = {"num_examples": 16000, "config": {"min_length": 50, "max_length": 250}}
    changed = merged_options(base, {"config": {"min_length": 1024, "max_length": 2048}, "seed": 3})
    assert changed == {"num_examples": 16000, "config": {"min_length": 1024, "max_length": 2048}, "seed": 3}
    assert base["config"]["min_length"] == 50  # the run's own options are left as they were
    assert merged_options({"config": {"a": 1}}, {"config": 2}) == {"config": 2}
