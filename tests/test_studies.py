"""The study runner, its reports, the symmetry measures and `bixt analyze attention`.

The end-to-end tests run every declared study with ``--quick`` (a few steps on a few real Fashion-MNIST items per
cell) through the real command line, from the repository root where configs/studies/ lives.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bixt
from bixt.analysis.symmetry import measure_symmetry, pair_scores
from bixt.layers.attention_math import AttentionMaps
from bixt.studies.runner import plan
from bixt.studies.spec import StudyError, load_study, override_args

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(
    img_size=28, in_chans=1, num_classes=10, embed_dim=32, depth=3, num_heads=2, num_latents=8, tokenizer="conv4"
)


def _bixt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, "-m", "bixt", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def _require_fashion_mnist() -> None:
    from bixt.data import is_fetched

    if not is_fetched("fashion-mnist"):
        pytest.skip("fashion-mnist is not fetched (run `bixt data fetch fashion-mnist`)")


# -- symmetry measures ---------------------------------------------------------------------------------------------


def test_logit_symmetry_is_one_for_bixt_by_construction() -> None:
    torch.manual_seed(0)
    model = bixt.create_model("bixt_ti_l64_p16", **SMALL)
    scores = measure_symmetry(model, torch.randn(6, 1, 28, 28))
    assert scores.layers == [0, 1]  # the one-sided last layer has no token direction
    torch.testing.assert_close(scores.scores["logit"], torch.ones(2, 2), atol=1e-6, rtol=0)
    # ... but the two post-softmax maps differ (different normalisation axes), and permuting latents breaks both.
    assert scores.scores["map"].max() < 0.99
    assert scores.chance["logit"].abs().max() < 0.5


def test_logit_symmetry_is_near_chance_for_untrained_independent_projections() -> None:
    torch.manual_seed(0)
    model = bixt.create_model("sequential_ti_l64_p16", **SMALL)
    scores = measure_symmetry(model, torch.randn(32, 1, 28, 28))
    # Independent random query/key projections per direction: the two similarity matrices are unrelated.
    assert scores.scores["logit"].abs().max() < 0.15
    assert scores.scores["map"].abs().max() < 0.15
    assert abs(float(scores.scores["logit"].mean()) - float(scores.chance["logit"].mean())) < 0.1


def test_pair_scores_of_identical_logits_and_of_a_one_sided_layer() -> None:
    logits = torch.randn(2, 3, 5, 7)  # (b, h, m, n)
    maps = AttentionMaps(logits.softmax(-1), logits.transpose(-2, -1).softmax(-1))
    scores = pair_scores(maps)
    torch.testing.assert_close(scores["logit"], torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="one-sided"):
        pair_scores(AttentionMaps(logits.softmax(-1), None))


# -- study files and planning ---------------------------------------------------------------------------------------


def test_every_declared_study_loads_and_plans_unique_run_directories(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("attention-types", "scaling", "symmetry", "lra", "points", "dense"):
        study = load_study(name)
        runs = plan(study, root=tmp_path, seeds=None, cells=None, quick=False)
        assert len(runs) == sum(len(study.cell_seeds(cell)) for cell in study.cells)
        assert len({run.run_dir for run in runs}) == len(runs)


def test_every_declared_bench_invocation_parses_into_valid_cases(monkeypatch) -> None:
    from bixt.commands.bench import build_parser, cases_of

    monkeypatch.chdir(ROOT)
    for name in ("attention-types", "scaling", "symmetry", "lra", "points", "dense"):
        for args in load_study(name).bench:
            assert cases_of(build_parser().parse_args(shlex.split(args)))  # raises for a bad model or option


def test_the_points_bench_measures_the_3_epoch_cells_models(monkeypatch) -> None:
    from bixt.bench.throughput import build
    from bixt.commands.bench import build_parser, cases_of
    from bixt.engine.builders import build_model
    from bixt.engine.config import parse_config

    monkeypatch.chdir(ROOT)
    study = load_study("points")
    (args,) = study.bench
    benched = {
        case.model: build(case, "meta")[0].config for case in cases_of(build_parser().parse_args(shlex.split(args)))
    }
    for cell, model_name in (("naive-60k-3ep", "bixt_points_cls_naive"), ("grouped-60k-3ep", "bixt_points_cls")):
        config = parse_config(["-c", str(study.recipe), *override_args(study.cell_overrides(cell, quick=False))])
        with torch.device("meta"):
            trained = build_model(config).config
        assert benched[model_name] == trained, cell


def test_attention_types_cells_are_matched_in_flops_within_five_percent(monkeypatch) -> None:
    from bixt.bench.cost import count_cost
    from bixt.engine.builders import build_model
    from bixt.engine.config import parse_config

    monkeypatch.chdir(ROOT)
    study = load_study("attention-types")
    flops = {}
    for cell in study.cells:
        config = parse_config(["-c", str(study.recipe), *override_args(study.cell_overrides(cell, quick=False))])
        with torch.device("meta"):
            model = build_model(config)
        flops[cell] = count_cost(model, model.example_input()).flops
    mean = sum(flops.values()) / len(flops)
    assert all(abs(f / mean - 1) <= 0.05 for f in flops.values()), flops


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "title: t\nkind: comparison\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\nextra: 1\n",
            "unknown keys",
        ),
        ("title: t\nkind: other\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\n", "kind must be one of"),
        ("title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0, 0]\ncells: {a: {}}\n", "seeds repeat"),
        ("title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [true]\ncells: {a: {}}\n", "list of integers"),
        (
            "title: t\nkind: scaling\nrecipe: nowhere.yaml\nseeds: [0]\ncells: {a: {}}\n",
            "recipe nowhere.yaml of cell .a. not found",
        ),
        ("title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {A/b: {}}\n", "cell name"),
        ("title: t\nkind: scaling\nseeds: [0]\ncells: {a: {}}\n", "missing keys"),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\nbench: [--out x]\n",
            "bench must be the `bixt bench` arguments",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\nbench: [[--tokens]]\n",
            "or a list of such strings",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\nbench: ''\n",
            "none empty",
        ),
        ("[1, 2]\n", "a study file is a mapping"),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {seeds: [1, 1]}}\n",
            "the seeds of cell 'a' repeat",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {seeds: []}}\n",
            "the seeds of cell 'a' must be a non-empty list of integers",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\n"
            "cells: {a: {}, b: {init_from: a, seeds: [0, 1]}}\n",
            r"cell 'b' runs seeds \[1\] that its init_from cell does not",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\n"
            "evaluations: {cells: [b], axis: tokens, sets: {long: {x: 1, options: {}}}}\n",
            "evaluations.cells must list cells of the study",
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}}\n"
            "evaluations: {cells: [a], axis: tokens, sets: {long: {options: {}}}}\n",
            "evaluation set 'long' must be {x: number, options: mapping}",
        ),
        *(
            (
                "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}, b: {}}\n"
                f"ordering: {ordering}\n",
                "ordering must be a claim",
            )
            for ordering in ("[[a]]", "[a, b]", "[[[a]], [[a], [b]]]", "[[a], []]", "[[a], [1]]", "{a: b}")
        ),
        (
            "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}, b: {}}\n"
            "ordering: [[[a], [b]], [[a], [c]]]\n",
            r"ordering names cells that do not exist: \['c'\]",
        ),
    ],
)
def test_bad_study_files_say_what_is_wrong(tmp_path: Path, monkeypatch, text: str, message: str) -> None:
    monkeypatch.chdir(ROOT)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(StudyError, match=message):
        load_study(str(path))


def test_ordering_is_one_claim_or_a_list_of_claims_each_checked_pair_by_pair(tmp_path: Path, monkeypatch) -> None:
    from bixt.studies.report import _ordering

    monkeypatch.chdir(ROOT)
    head = "title: t\nkind: scaling\nrecipe: configs/mnist.yaml\nseeds: [0]\ncells: {a: {}, b: {}, c: {}, d: {}}\n"
    for ordering, expected in (
        ("[[a, b], [c]]", ((("a", "b"), ("c",)),)),
        ("[[[a], [b]], [[c], [d]]]", ((("a",), ("b",)), (("c",), ("d",)))),
    ):
        path = tmp_path / "study.yaml"
        path.write_text(head + f"ordering: {ordering}\n")
        assert load_study(str(path)).orderings == expected
    finished = {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 5.0], "d": [5.0, 5.0], "e": [6.0]}
    holds = "\n".join(_ordering(finished, (("a",), ("b",))))
    assert "- a < b: holds: b +2.00 points, +2.8 standard errors" in holds and "holds in every pair" in holds
    tie = "\n".join(_ordering(finished, (("c",), ("d",))))  # equal seeds: no spread, no difference
    assert "- c < d: does NOT hold (a tie): d +0.00 points, +0.0 standard errors" in tie
    assert "**The ordering does not hold: 1 of 1 pairs tie.**" in tie
    against = "\n".join(_ordering(finished, (("b", "c"), ("a",))))  # a is below both
    assert "**The ordering does not hold: 2 of 2 pairs go the other way.**" in against
    assert "cannot be decided yet" in "\n".join(_ordering(finished, (("b",), ("e",))))


def test_unknown_study_and_cell_are_named(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(StudyError, match="attention-types"):  # the message lists the known studies
        load_study("no-such-study")
    with pytest.raises(StudyError, match="no cell 'nope'"):
        load_study("scaling").cell_overrides("nope", quick=False)


def test_cells_can_start_from_their_own_recipe_and_shrink_their_own_way(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    study = load_study("lra")
    assert study.cell_recipe("text-bixt") == Path("configs/imdb.yaml")
    assert study.cell_recipe("listops-bixt") == Path("configs/listops.yaml")  # the study's recipe
    quick = study.cell_overrides("listops-bixt", quick=True)
    assert quick["data.options"]["num_examples"] == 32 and quick["schedule.epochs"] == 1
    assert "quick" not in quick and "recipe" not in study.cell_overrides("text-bixt", quick=False)


def test_a_cell_may_run_its_own_seeds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    path = tmp_path / "seeds.yaml"
    path.write_text(
        "title: t\nkind: comparison\nrecipe: configs/mnist.yaml\nseeds: [0, 1]\n"
        "cells: {a: {}, b: {seeds: [0, 1, 2], model.options.depth: 2}}\n"
    )
    study = load_study(str(path))
    planned = [(run.cell, run.seed) for run in plan(study, root=tmp_path, seeds=None, cells=None, quick=False)]
    assert planned == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)]
    assert "seeds" not in study.cell_overrides("b", quick=False)  # not a `bixt train` override
    quick = [(run.cell, run.seed) for run in plan(study, root=tmp_path, seeds=None, cells=None, quick=True)]
    assert quick == [("a", 0), ("b", 0)]
    asked = [(run.cell, run.seed) for run in plan(study, root=tmp_path, seeds=(2,), cells=("b",), quick=False)]
    assert asked == [("b", 2)]  # --seeds still chooses


def test_override_args_keep_negative_numbers_and_structures() -> None:
    args = override_args({"optim.lr": -1.0, "augment.mean": [0.5], "ema_decay": None, "progress": False})
    assert args == ["--optim.lr=-1.0", "--augment.mean=[0.5]", "--ema_decay=null", "--progress=false"]


# -- end to end through the command line ----------------------------------------------------------------------------


@pytest.mark.network_data
@pytest.mark.parametrize("name", ["attention-types", "scaling", "symmetry", "lra", "points", "dense"])
def test_quick_study_runs_and_reports(tmp_path: Path, name: str) -> None:
    _require_fashion_mnist()
    run = _bixt("study", "run", name, "--quick", "--jobs", "2", "--root", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    report = _bixt("study", "report", name, "--quick", "--root", str(tmp_path), "--out", str(tmp_path / "results"))
    assert report.returncode == 0, report.stdout + report.stderr
    records = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    study = load_study(str(ROOT / "configs" / "studies" / f"{name}.yaml"))
    assert [r["cell"] for r in records] == list(study.cells)
    assert all(r["status"] == "finished" and r["final"][r["primary"]] >= 0 and r["flops"] > 0 for r in records)
    # Cells started two at a time got a run directory each, holding their own model, never another cell's.
    run_dirs = [Path(r["run_dir"]) for r in records]
    assert len(set(run_dirs)) == len(run_dirs)
    for record, run_dir in zip(records, run_dirs, strict=True):
        saved = (run_dir / "config.yaml").read_text()
        assert f"name: {record['model']}" in saved and f"seed: {record['seed']}" in saved
    readme = (tmp_path / "results" / "README.md").read_text()
    assert f"bixt study run {name} --quick" in readme and "## Every run" in readme
    for png in tmp_path.glob("results/*.png"):
        assert png.stat().st_size > 10_000
    expected = {"scaling": 2, "symmetry": 3, "lra": 2}.get(name, 1)
    assert len(list(tmp_path.glob("results/*.png"))) == expected
    if name == "points":  # the point-order check: as stored it is the run's own final evaluation
        for record in records:
            check = record["point_order"]
            assert check["num_items"] == 16 and check["top1"] == pytest.approx(record["final"]["top1"])
        naive = next(r for r in records if r["cell"] == "naive")["point_order"]
        assert naive["max_logit_change"] < 1e-4  # one token per point, no position code: order cannot matter
        assert "top1 permuted" in readme
        # Each run's check is kept beside it, and a second report reads it instead of evaluating again.
        kept = {r["run_dir"]: list(Path(r["run_dir"]).glob("checks/point-order-*.json")) for r in records}
        assert all(len(files) == 1 for files in kept.values())
        stamps = {files[0]: files[0].stat().st_mtime_ns for files in kept.values()}
        again = _bixt("study", "report", name, "--quick", "--root", str(tmp_path), "--out", str(tmp_path / "again"))
        assert again.returncode == 0, again.stdout + again.stderr
        assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
        rereported = [json.loads(line) for line in (tmp_path / "again" / "results.jsonl").read_text().splitlines()]
        assert [r["point_order"] for r in rereported] == [r["point_order"] for r in records]
    if name == "lra":  # its throughput table is one bench invocation, whose command the README gives
        assert "Not measured yet: `bixt bench --model bixt_lra_text transformer_lra_text" in readme
        # FLOPs are counted at the example input's fixed length, and the README says which
        # (the retrieval models' pairs: two passages of 256 bytes)
        assert "per sample at the input shape of each model's `example_input()`, [[256], [256]] / [[256]] (" in readme
        # Its evaluations on longer expressions: one result per set; the "own" set (no options changed) is the
        # run's own test data, so it reproduces the run's final evaluation.
        evaluated = [r for r in records if r["cell"] in study.evaluations.cells]
        assert evaluated and all(set(r["evaluations"]) == {e.name for e in study.evaluations.sets} for r in evaluated)
        for record in evaluated:
            assert record["evaluations"]["own"]["metrics"]["top1"] == pytest.approx(record["final"]["top1"])
            longest = record["evaluations"]["tokens-1024-2048"]
            assert longest["num_items"] == 8 and longest["data_options"]["config"]["min_length"] == 1024
        assert "## Evaluated on other data" in readme
        again = _bixt("study", "run", name, "--quick", "--root", str(tmp_path), "--cells", *study.evaluations.cells)
        assert again.returncode == 0 and "evaluation own: done before, kept" in again.stdout


def test_an_unreadable_earlier_report_is_named_not_overwritten(tmp_path: Path) -> None:
    from bixt.studies.report import earlier_records

    results = tmp_path / "results.jsonl"
    assert earlier_records(results) == {}  # no earlier report: nothing to carry
    finished = '{"cell": "a", "seed": 0, "status": "finished"}'
    not_run = '{"cell": "b", "seed": 0, "status": "not run"}'
    results.write_text(f"{finished}\n{not_run}\n")
    assert list(earlier_records(results)) == [("a", 0)]
    results.write_text(f'{finished}\n{{"cell": "b", "se\n')
    with pytest.raises(StudyError, match=r"results\.jsonl, line 2: not a JSON record"):
        earlier_records(results)
    results.write_text('{"cell": "a"}\n')
    with pytest.raises(StudyError, match="line 1: a run record needs cell, seed and status"):
        earlier_records(results)


def _tiny_study(tmp_path: Path) -> Path:
    """A study file of two quick Fashion-MNIST cells, a and b, one seed (skips without the data set)."""
    _require_fashion_mnist()
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(
        "title: tiny\nkind: comparison\nrecipe: configs/studies/fashion-mnist-conv4.yaml\nseeds: [0]\n"
        "quick: {data.train_limit: 32, data.eval_limit: 32, schedule.epochs: 1, batch_size: 16, eval_batch_size: 32,"
        " model.options.embed_dim: 16, model.options.depth: 1}\n"
        "cells: {a: {}, b: {model.options.num_latents: 4}}\n"
    )
    return study_file


@pytest.mark.network_data
def test_a_report_keeps_the_runs_of_an_earlier_report_whose_directories_are_gone(tmp_path: Path) -> None:
    study_file = _tiny_study(tmp_path)
    root, out = tmp_path / "runs", tmp_path / "results"
    assert _bixt("study", "run", str(study_file), "--quick", "--jobs", "2", "--root", str(root)).returncode == 0
    report = ("study", "report", str(study_file), "--quick", "--root", str(root))
    assert _bixt(*report, "--out", str(out)).returncode == 0
    first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    shutil.rmtree(root / "tiny" / "b")  # cell b ran on another machine: only the committed report has it
    (root / "tiny" / "b").mkdir()
    assert _bixt(*report, "--out", str(out)).returncode == 0, "the report replaces its own results.jsonl"
    second = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert second[0] == first[0] and "carried_over" not in second[0]
    assert second[1] == {**first[1], "carried_over": True} and second[1]["status"] == "finished"
    readme = (out / "README.md").read_text()
    assert "| b | 0 | finished, from an earlier report |" in readme and "| a | 0 | finished |" in readme
    # Without an earlier report there is nothing to carry: the run is listed as not run.
    assert _bixt(*report, "--out", str(tmp_path / "elsewhere")).returncode == 0
    elsewhere = [json.loads(line) for line in (tmp_path / "elsewhere" / "results.jsonl").read_text().splitlines()]
    assert elsewhere[1]["status"] == "not run"


@pytest.mark.network_data
def test_finished_cells_are_kept_and_unfinished_ones_resume(tmp_path: Path) -> None:
    study_file = _tiny_study(tmp_path)
    root = tmp_path / "runs"
    assert _bixt("study", "run", str(study_file), "--quick", "--jobs", "2", "--root", str(root)).returncode == 0
    record_a, record_b = root / "tiny" / "a" / "seed-0.json", root / "tiny" / "b" / "seed-0.json"
    kept = record_a.read_text()
    record_b.unlink()  # as if the runner had died before writing its record: the cell is unfinished
    again = _bixt("study", "run", str(study_file), "--quick", "--root", str(root))
    assert again.returncode == 0, again.stderr
    assert "a seed 0: finished before, kept" in again.stdout and record_a.read_text() == kept
    assert "--resume" in json.loads(record_b.read_text())["command"]  # picked up from its checkpoint
    # interrupted after it started, with the spec changed since: the record keeps what the run started with
    started = json.loads(record_a.read_text())
    record_a.write_text(json.dumps({**started, "status": "interrupted"}))
    study_file.write_text(study_file.read_text().replace("a: {}", "a: {model.options.num_latents: 6}"))
    resumed = _bixt("study", "run", str(study_file), "--quick", "--root", str(root))
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(record_a.read_text())
    assert record["status"] == "finished" and record["attempts"] == 2
    assert record["command"] == started["command"] and "num_latents" not in " ".join(record["command"])
    assert record["overrides"] == started["overrides"] and "model.options.num_latents" not in record["overrides"]
    assert "--resume" in (root / "tiny" / "a" / "seed-0.log").read_text()  # what this attempt ran is in the log


@pytest.mark.network_data
def test_analyze_attention_draws_a_grid_and_names_bad_requests(tmp_path: Path) -> None:
    _require_fashion_mnist()
    study_file = tmp_path / "one.yaml"
    study_file.write_text(
        "title: one\nkind: symmetry\nrecipe: configs/studies/fashion-mnist-conv4.yaml\nseeds: [0]\n"
        "quick: {data.train_limit: 32, data.eval_limit: 8, schedule.epochs: 1, batch_size: 16,"
        " model.options.embed_dim: 16, model.options.depth: 2}\ncells: {bixt: {}}\n"
    )
    assert _bixt("study", "run", str(study_file), "--quick", "--root", str(tmp_path)).returncode == 0
    run_dir = tmp_path / "one" / "bixt" / "seed-0"
    out = tmp_path / "grid.png"
    drawn = _bixt("analyze", "attention", str(run_dir), "--images", "2", "--layer", "0", "--out", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert out.stat().st_size > 10_000
    bad_layer = _bixt("analyze", "attention", str(run_dir), "--layer", "7", "--out", str(out))
    assert bad_layer.returncode == 2 and "layer 7 does not exist" in bad_layer.stderr
    bad_latent = _bixt("analyze", "attention", str(run_dir), "--latents", "99", "--out", str(out))
    assert bad_latent.returncode == 2 and "latents [99] do not exist" in bad_latent.stderr


def test_analyze_attention_draws_the_authors_weights_on_an_image_folder(tmp_path: Path) -> None:
    from official_reference import OfficialSpec, official_state_dict
    from PIL import Image
    from safetensors.torch import save_file

    spec = OfficialSpec(embed_dim=192, num_heads=6, depth=12, num_latents=64, num_classes=1000, pos_buffer_grid=14)
    save_file(official_state_dict(spec), tmp_path / "official.safetensors")
    (tmp_path / "images" / "some-class").mkdir(parents=True)
    for i in range(2):
        pixels = torch.randint(0, 256, (40, 60, 3), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(tmp_path / "images" / "some-class" / f"{i}.png")
    out = tmp_path / "grid.png"
    argv = ["analyze", "attention", str(tmp_path / "official.safetensors"), "--official-model", "bixt_ti_l64_p16"]
    drawn = _bixt(*argv, "--image-folder", str(tmp_path / "images"), "--out", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert out.stat().st_size > 10_000
    no_images = _bixt(*argv, "--out", str(out))
    assert no_images.returncode == 2 and "--image-folder" in no_images.stderr


def test_the_bench_table_puts_models_side_by_side_with_their_ratio(tmp_path: Path, monkeypatch) -> None:
    from bixt.studies.report import _bench, bench_path

    monkeypatch.chdir(ROOT)
    study = load_study("lra")
    base = {"mode": "train", "batch": 32, "precision": "fp32", "attn": "auto", "machine": "test CPU", "threads": 1}
    records = [
        {**base, "model": "bixt_lra_text", "tokens": 1024, "samples_per_s": 12.0, "step_s": 2.7, "peak_mem_mb": 900},
        {
            **base,
            "model": "transformer_lra_text",
            "tokens": 1024,
            "samples_per_s": 4.0,
            "step_s": 8,
            "peak_mem_mb": 950,
        },
        {**base, "model": "bixt_lra_text", "tokens": 4096, "samples_per_s": 5.0, "step_s": 6.4, "peak_mem_mb": 2000},
        {**base, "model": "transformer_lra_text", "tokens": 4096, "error": ["MemoryError"]},
    ]
    bench_path(tmp_path, 0).write_text("".join(json.dumps(r) + "\n" for r in records))
    lines, plots = _bench(study, tmp_path)
    assert "| train | 32 | 1,024 | 12.00 | 4.00 | 3.00x | 900 / 950 |" in lines
    assert "| train | 32 | 4,096 | 5.00 | failed | — | 2000 / — |" in lines
    assert any("on test CPU, 1 thread(s) per case" in line for line in lines)
    assert any("transformer_lra_text train b=32 n=4096 failed" in line for line in lines)
    assert plots[0].stat().st_size > 10_000
    # the study's later invocations (batch 256) each have their own records, table and plot
    assert len(study.bench) >= 3 and all("--batch 256" in args for args in study.bench[1:])
    waiting, _ = _bench(study, tmp_path, 1)
    assert "## Throughput, invocation 2" in waiting and any("Not measured yet" in line for line in waiting)
    second = [{**r, "batch": 256} for r in records[:2]]
    assert bench_path(tmp_path, 1) == tmp_path / "bench-2.jsonl"
    bench_path(tmp_path, 1).write_text("".join(json.dumps(r) + "\n" for r in second))
    lines, plots = _bench(study, tmp_path, 1)
    assert "| train | 256 | 1,024 | 12.00 | 4.00 | 3.00x | 900 / 950 |" in lines
    assert any(f"--out {tmp_path / 'bench-2.jsonl'}" in line for line in lines)
    assert plots[0].name == "throughput-2.png" and plots[0].stat().st_size > 10_000
    assert bench_path(tmp_path, 2) == tmp_path / "bench-3.jsonl"
    third, _ = _bench(study, tmp_path, 2)
    assert "## Throughput, invocation 3" in third and any("--tokens 4096 --batch 256" in line for line in third)
