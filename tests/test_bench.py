"""The benchmark machinery (not timings): cases validate, inputs have the asked token count, records are complete."""

from __future__ import annotations

import json

import pytest

from bixt.bench.suite import machine_description, write_jsonl
from bixt.bench.throughput import BenchCase, build, forward_flops, measure
from bixt.commands.bench import main as bench_main


def test_case_validation() -> None:
    with pytest.raises(ValueError, match="mode"):
        BenchCase(model="bixt_ti_l64_p16", tokens=196, mode="fit")
    with pytest.raises(ValueError, match="attn"):
        BenchCase(model="bixt_ti_l64_p16", tokens=196, attn="sparse")
    with pytest.raises(ValueError, match="no_such_model"):
        BenchCase(model="no_such_model", tokens=196)
    with pytest.raises(ValueError, match="square"):
        build(BenchCase(model="bixt_ti_l64_p16", tokens=200, batch=1), "meta")


def test_inputs_have_the_asked_number_of_tokens() -> None:
    model, (x,) = build(BenchCase(model="bixt_ti_l64_p16s4", tokens=1024, batch=2), "meta")
    assert x.shape == (2, 3, 128, 128)
    assert model.tokenizer(x).tokens.shape[1] == 1024
    _, (ids,) = build(BenchCase(model="bixt_lra_listops", tokens=300, batch=3), "meta")
    assert ids.shape == (3, 300)
    _, (points,) = build(BenchCase(model="bixt_points_cls_naive", tokens=128, batch=2), "meta")
    assert points.shape[:2] == (2, 128)


def test_options_reach_the_model_and_bad_ones_are_refused(capsys) -> None:
    case = BenchCase(model="bixt_points_cls", tokens=128, options={"embed_dim": 32, "num_groups": 16, "group_size": 8})
    model, _ = build(case, "meta")
    assert (model.config.embed_dim, model.config.num_groups, model.config.num_points) == (32, 16, 128)
    assert forward_flops(case) < forward_flops(BenchCase(model="bixt_points_cls", tokens=128))
    with pytest.raises(ValueError, match="valid options"):
        BenchCase(model="bixt_points_cls", tokens=128, options={"embed_dims": 32})
    with pytest.raises(ValueError, match="set by tokens"):
        BenchCase(model="bixt_points_cls", tokens=128, options={"num_points": 64})
    assert bench_main(["--model", "bixt_points_cls", "--tokens", "64", "--options", '{"embed_dims": 1}']) == 2
    assert "embed_dims" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_main(["--model", "bixt_points_cls", "--tokens", "64", "--options", "[32]"])
    assert "JSON object" in capsys.readouterr().err


def test_forward_flops_grow_linearly_for_bixt() -> None:
    small, large = (forward_flops(BenchCase(model="bixt_ti_l64_p16", tokens=n, batch=1)) for n in (1024, 4096))
    # the token-independent latent work makes the ratio a little below 4, never above it
    assert 3.0 < large / small <= 4.0


def test_measure_record_and_jsonl(tmp_path) -> None:
    case = BenchCase(model="bixt_lra_listops", tokens=64, batch=2, attn="chunked", warmup=0, repeats=2)
    record = measure(case)
    for key in ("model", "tokens", "batch", "precision", "mode", "samples_per_s", "peak_mem_mb", "flops"):
        assert key in record
    assert len(record["step_s_all"]) == 2 and record["samples_per_s"] > 0 and record["flops"] > 0
    write_jsonl([record], tmp_path / "out.jsonl")
    assert json.loads((tmp_path / "out.jsonl").read_text())["attn"] == "chunked"


@pytest.mark.parametrize("units, used", [("amx", "bf16"), ("none", "fp32")])
def test_measure_records_the_precision_and_attention_auto_chose(monkeypatch, units: str, used: str) -> None:
    import bixt.precision

    monkeypatch.setattr(bixt.precision, "cpu_bf16_units", lambda: units)
    record = measure(BenchCase(model="bixt_lra_listops", tokens=64, batch=2, warmup=0, repeats=1))
    assert record["precision"] == "auto" and record["precision_used"] == used
    dtype = "bfloat16" if used == "bf16" else "float32"
    assert record["attn_chosen"] and all(dtype in key for key in record["attn_chosen"])
    assert {path.split(" (")[0] for path in record["attn_chosen"].values()} <= {"explicit", "fused", "chunked"}


def test_command_rejects_unknown_model(capsys) -> None:
    assert bench_main(["--model", "no_such_model", "--tokens", "64"]) == 2
    assert "no_such_model" in capsys.readouterr().out


def test_one_invocation_covers_every_batch_and_mode(tmp_path) -> None:
    out = tmp_path / "bench.jsonl"
    argv = ["--model", "bixt_lra_listops", "--tokens", "32", "--batch", "1", "2", "--mode", "train", "infer"]
    assert bench_main([*argv, "--options", '{"depth": 1}', "--warmup", "0", "--repeats", "1", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["batch"], r["mode"]) for r in records) == [(1, "infer"), (1, "train"), (2, "infer"), (2, "train")]
    # the options reach the measuring processes: each record counts the one-layer model's FLOPs
    one_layer = forward_flops(BenchCase(model="bixt_lra_listops", tokens=32, options={"depth": 1}))
    assert one_layer < forward_flops(BenchCase(model="bixt_lra_listops", tokens=32))
    assert all(r["options"] == {"depth": 1} and r["flops"] == one_layer for r in records)


def test_scaling_plot_is_a_png_and_skips_failed_cases(tmp_path):
    from bixt.analysis import plot_scaling

    base = {"model": "m", "mode": "train", "precision": "fp32", "attn": "auto", "batch": 2}
    records = [
        {**base, "tokens": 256, "step_s": 0.1, "peak_mem_mb": 100.0},
        {**base, "tokens": 1024, "step_s": 0.4, "peak_mem_mb": 300.0},
        {**base, "tokens": 4096, "error": "out of memory"},
    ]
    path = plot_scaling(records, tmp_path / "scaling.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_suite_keeps_rounds_in_order_and_picks_the_median_round(monkeypatch) -> None:
    import bixt.bench.suite as suite

    times = iter([0.3, 0.1, None, 0.2])  # rounds 0-3 of one case; round 2 failed
    monkeypatch.setattr(suite, "matmul_peak_gflop_s", lambda device: 100.0)

    def fake_process(case: BenchCase) -> dict:
        step = next(times)
        base = {"model": case.model, "tokens": case.tokens, "batch": case.batch, "mode": case.mode, "attn": case.attn}
        base |= {"precision": case.precision, "precision_used": case.precision}
        if step is None:
            return base | {"error": ["MemoryError"]}
        measured = {"step_s": step, "samples_per_s": case.batch / step, "peak_mem_mb": step * 1000}
        return base | measured | {"achieved_gflop_s": 1.0 / step}

    monkeypatch.setattr(suite, "_run_case_process", fake_process)
    (record,) = suite.run_suite([BenchCase(model="bixt_lra_listops", tokens=64, batch=2)], rounds=4, log=lambda _: None)
    # round order, not sorted, and the failed round kept as None: index i is round i, pairable with another case's
    assert record["step_s_rounds"] == [0.3, 0.1, None, 0.2]
    assert record["peak_mem_mb_rounds"] == [300.0, 100.0, None, 200.0]
    assert record["step_s"] == 0.2 and record["median_round"] == 3 and record["rounds"] == 3
    assert record["step_s_rounds"][record["median_round"]] == record["step_s"]
    assert record["peak_fraction"] == pytest.approx(5.0 / 100.0)


@pytest.mark.parametrize(
    "model, flags, expected",
    [
        ("1", "fpu avx2", "AMD EPYC (family 25, model 1, bf16 units: none)"),
        ("17", "avx2 avx512f avx512_bf16", "AMD EPYC (family 25, model 17, bf16 units: avx512_bf16)"),
    ],
)
def test_machine_description_tells_zen3_from_zen4(monkeypatch, tmp_path, model: str, flags: str, expected: str) -> None:
    # Both report the model name "AMD EPYC"; only the family / model numbers and flags tell them apart.
    import bixt.precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
        f"model name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\nmodel\t\t: 99\n"
    )
    monkeypatch.setattr(bixt.precision, "CPUINFO", cpuinfo)
    bixt.precision.cpu_bf16_units.cache_clear()
    try:
        assert machine_description().startswith(expected + ", ")
    finally:
        bixt.precision.cpu_bf16_units.cache_clear()
