"""Damaged data and weights are named, never used: flipped bytes in a fetched set (same size), in a checkpoint's
weights, EMA or training state, in a saved model; damaged generated and statistics caches are rebuilt; an official
checkpoint that is damaged is told apart from one that is merely untrusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)
from test_data_fetch import source  # noqa: F401 (fixture: a local npm source 'toy')

import bixt
from bixt.cli import main as cli_main
from bixt.data.fetch import fetch_dataset, fetched_dir
from bixt.data.generated import cached_arrays
from bixt.engine.config import ConfigError
from bixt.engine.evaluation import evaluate_checkpoint
from bixt.engine.run import fit
from bixt.fileio import DamagedFileError


def _flip_byte(path: Path, offset: int | None = None) -> None:
    """Change one byte in place: the size stays, so only the content tells."""
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_fetched_file_with_flipped_bytes_is_named_with_its_repair(tmp_path, source, capsys):  # noqa: F811
    cache = tmp_path / "cache"
    fetch_dataset("toy", cache, log=lambda _: None)
    assert fetched_dir("toy", cache) == cache / "toy"
    _flip_byte(cache / "toy" / "a.bin")
    with pytest.raises(DamagedFileError, match=r"toy/a\.bin no longer match.*repair with `bixt data fetch toy`"):
        fetched_dir("toy", cache)
    # The repair command named in the message repairs it.
    assert cli_main(["data", "fetch", "toy", "--cache-dir", str(cache)]) == 0
    assert fetched_dir("toy", cache) == cache / "toy"


def test_a_damaged_fetched_set_fails_the_run_before_training(tmp_path, monkeypatch):
    import bixt.data.registry as registry

    cache = tmp_path / "cache"
    (cache / "fake").mkdir(parents=True)
    (cache / "fake" / "x.bin").write_bytes(b"0123456789")
    from bixt.data.cache import sha256_file

    manifest = {"name": "fake", "files": {"x.bin": {"sha256": sha256_file(cache / "fake" / "x.bin"), "size": 10}}}
    (cache / "fake" / "manifest.json").write_text(json.dumps(manifest))
    _flip_byte(cache / "fake" / "x.bin")

    def build(split, cache_dir):
        fetched_dir("fake", cache_dir)
        return tiny_images()

    monkeypatch.setitem(
        registry._REGISTRY, "fake", registry.DatasetInfo("fake", "fetched", ("train", "test"), "", "", build)
    )
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match=r"fake/x\.bin no longer match.*bixt data fetch fake"):
        fit(tiny_config(str(out), "--data.name", "fake", "--data.cache_dir", str(cache)))
    assert not out.exists()


@pytest.fixture
def run(tmp_path) -> Path:
    data = tiny_images()
    return fit(
        tiny_config(str(tmp_path), "--run_name", "r", "--ema_decay", "0.9"), train_set=data, eval_set=data
    ).run_dir


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors", "training_state.pt"])
def test_flipped_bytes_in_a_checkpoint_are_named_on_resume(run, tmp_path, name):
    checkpoint = run / "checkpoints" / "step-00000012"
    _flip_byte(checkpoint / name, offset=os.path.getsize(checkpoint / name) - 20)  # in the data, not the header
    data = tiny_images()
    before = sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file())
    with pytest.raises(ConfigError, match=rf"cannot resume from .*step-00000012: .*{name} is damaged: its sha256"):
        resumed = tiny_config(str(tmp_path), "--resume", str(run), "--ema_decay", "0.9", "--schedule.epochs", "3")
        fit(resumed, train_set=data, eval_set=data)
    assert sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()) == before


def test_flipped_bytes_in_weights_are_named_by_from_pretrained_and_eval(run, capsys):
    checkpoint = run / "checkpoints" / "step-00000012"
    bixt.from_pretrained(checkpoint)  # intact: loads
    weights = checkpoint / "model.safetensors"
    _flip_byte(weights, offset=weights.stat().st_size - 20)
    with pytest.raises(DamagedFileError, match=r"step-00000012/model\.safetensors is damaged: its sha256"):
        bixt.from_pretrained(checkpoint)
    with pytest.raises(DamagedFileError, match=r"model\.safetensors is damaged"):
        evaluate_checkpoint(run)
    assert cli_main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors is damaged" in err and "Traceback" not in err


def test_truncated_saved_model_files_are_named(tmp_path):
    model = bixt.create_model("bixt_ti_l64_p16", img_size=32, embed_dim=16, depth=1, num_heads=2, num_latents=4)
    model.save_pretrained(tmp_path / "m")
    config = (tmp_path / "m" / "config.json").read_text()
    (tmp_path / "m" / "config.json").write_text(config[: len(config) // 2])
    with pytest.raises(DamagedFileError, match=r"m/config\.json is damaged: not valid JSON"):
        bixt.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(config)
    meta = json.loads(config)
    meta.pop("weights_sha256")  # a file saved before checksums: the reader itself must notice the truncation
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DamagedFileError, match=r"model\.safetensors is damaged: not a readable safetensors file"):
        bixt.from_pretrained(tmp_path / "m")


def test_damaged_generated_cache_is_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(1000)}

    first = cached_arrays(tmp_path, "toy", {"seed": 0}, build)
    (path,) = (tmp_path / "generated").glob("toy-*.npz")
    _flip_byte(path)
    with pytest.warns(UserWarning, match=rf"{path.name} is damaged .*generating it again"):
        again = cached_arrays(tmp_path, "toy", {"seed": 0}, build)
    np.testing.assert_array_equal(first["x"], again["x"])
    assert len(calls) == 2
    cached_arrays(tmp_path, "toy", {"seed": 0}, build)  # the rebuilt file reads back
    assert len(calls) == 2


def test_damaged_statistics_cache_is_recomputed(tmp_path, monkeypatch):
    import bixt.data.registry as registry
    from bixt.data.stats import normalisation_stats

    monkeypatch.setattr(registry, "load_dataset", lambda *args, **kwargs: tiny_images())
    good = normalisation_stats("tiny", tmp_path)
    path = tmp_path / "stats" / "tiny.json"
    path.write_text(path.read_text()[:10])
    with pytest.warns(UserWarning, match=r"tiny\.json is damaged .*computing the statistics again"):
        assert normalisation_stats("tiny", tmp_path) == good
    assert json.loads(path.read_text()) == good


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda good: good[: len(good) // 2], "is damaged or not a checkpoint"),
        (lambda good: os.urandom(2000), "is damaged or not a checkpoint"),
        (lambda good: b"", "is damaged or not a checkpoint"),
    ],
)
def test_load_official_tells_a_damaged_file_from_an_untrusted_one(tmp_path, content, expected):
    model = bixt.create_model("bixt_ti_l64_p16", img_size=32, embed_dim=16, depth=1, num_heads=2, num_latents=4)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "good.pth")
    (tmp_path / "bad.pth").write_bytes(content((tmp_path / "good.pth").read_bytes()))
    with pytest.raises(DamagedFileError, match=expected) as error:
        bixt.load_official(model, tmp_path / "bad.pth")
    assert "trust_pickle" not in str(error.value)  # the unsafe flag would not help a damaged file
