"""`model.init_from`: a fresh run starts from another run's backbone (the d13 protocol's pretrain -> fine-tune), and
a study cell can chain onto another cell's run of the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import TINY_BIXT, restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

from bixt.engine.builders import build_model, init_model_from
from bixt.engine.checkpoint import load_checkpoint_state, resolve_checkpoint
from bixt.engine.config import ConfigError
from bixt.engine.run import fit
from bixt.studies.runner import plan, run_study
from bixt.studies.spec import StudyError, load_study

# The same tiny BiXT one layer shallower: its only layer is one-sided, which the source's bi-directional layer 0 is not.
SHALLOW = TINY_BIXT.replace("depth: 2", "depth: 1")


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source")
    data = tiny_images()
    return fit(tiny_config(str(out), "--run_name", "source"), train_set=data, eval_set=data).run_dir


def test_a_fresh_model_takes_every_weight_but_its_head(source_run: Path, tmp_path: Path) -> None:
    config = tiny_config(str(tmp_path), "--model.init_from", str(source_run))
    torch.manual_seed(1)
    model = build_model(config)
    fresh_head = model.head.fc.weight.detach().clone()
    loaded = init_model_from(model, config, torch.device("cpu"))
    trained = load_checkpoint_state(resolve_checkpoint(source_run, prefer="last"))
    assert loaded.loaded and not loaded.missing and all(k.startswith("head.") for k in loaded.unused)
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            assert not torch.equal(value, trained[key])  # the head stays as initialised ...
        else:
            assert torch.equal(value, trained[key]), key  # ... every other weight is the source run's
    assert torch.equal(model.head.fc.weight, fresh_head)


def test_weights_the_source_lacks_are_an_error_unless_partial(source_run: Path, tmp_path: Path) -> None:
    data = tiny_images()
    shallow = ("--model.options", SHALLOW, "--model.init_from", str(source_run), "--output_dir", str(tmp_path))
    with pytest.raises(ConfigError, match=r"lacks backbone weights.*--model.init_partial true"):
        fit(tiny_config(str(tmp_path), *shallow, "--run_name", "strict"), train_set=data, eval_set=data)
    assert not (tmp_path / "strict").exists()  # refused before anything was written
    config = tiny_config(str(tmp_path), *shallow, "--model.init_partial", "true")
    loaded = init_model_from(build_model(config), config, torch.device("cpu"))
    assert loaded.missing and all(".layers.0.cross_block." in key for key in loaded.missing)
    assert "kept as initialised" in loaded.describe("the source")


def test_a_missing_source_is_named_before_anything_is_written(tmp_path: Path) -> None:
    data = tiny_images()
    config = tiny_config(str(tmp_path), "--model.init_from", str(tmp_path / "nowhere"), "--run_name", "r")
    with pytest.raises(ConfigError, match=r"model.init_from=.*nowhere.*does not exist"):
        fit(config, train_set=data, eval_set=data)
    assert not (tmp_path / "r").exists()


def _chained_study(tmp_path: Path, source_cell: str = "a") -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(
        "title: chain\nkind: comparison\nrecipe: configs/mnist.yaml\nseeds: [0, 1]\n"
        f"cells: {{a: {{}}, b: {{init_from: {source_cell}}}}}\n"
    )
    return path


def test_a_chained_cell_starts_from_its_source_cells_run_of_the_same_seed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    study = load_study(str(_chained_study(tmp_path)))
    runs = {(run.cell, run.seed): run for run in plan(study, root=tmp_path, seeds=None, cells=None, quick=False)}
    assert runs["b", 1].overrides["model.init_from"] == str(tmp_path / "chain" / "a" / "seed-1")
    assert runs["b", 1].source == tmp_path / "chain" / "a" / "seed-1" and runs["a", 1].source is None
    for bad in ("b", "nope"):
        with pytest.raises(StudyError, match="init_from must name another cell"):
            load_study(str(_chained_study(tmp_path, bad)))


def test_a_chained_cell_whose_source_has_not_finished_is_blocked_not_started(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    study = load_study(str(_chained_study(tmp_path)))
    outcome = run_study(study, root=tmp_path, seeds=(0,), cells=("b",), echo=lambda _: None)
    ((run, record),) = outcome
    assert record.status == "blocked" and "has not finished" in record.command[0]
    assert json.loads(run.record_path.read_text())["status"] == "blocked"
    assert not run.run_dir.exists() and not run.log_path.exists()  # no process was started
