"""``precision: auto``: bf16 only where the detected hardware makes it pay (the detection is mocked here)."""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

import bixt.precision as precision_module
from bixt.engine.config import load_config
from bixt.engine.epochs import KERNELS_NAME
from bixt.engine.run import fit
from bixt.precision import autocast_for, cpu_bf16_units, matmul_width, resolve_precision


@pytest.fixture
def cpu_units(monkeypatch: pytest.MonkeyPatch):
    def pretend(units: str) -> None:
        monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: units)

    return pretend


def test_auto_on_cpu_follows_the_detected_units(cpu_units) -> None:
    cpu_units("amx")
    assert resolve_precision("auto", "cpu").precision == "bf16"
    cpu_units("avx512_bf16")  # bf16 only for wide matmuls (measured on an AMD EPYC Zen 4)
    for width in (64, 192):
        assert resolve_precision("auto", "cpu", width=width).precision == "bf16"
    for width in (32, None):
        choice = resolve_precision("auto", "cpu", width=width)
        assert choice.precision == "fp32" and "AVX512-BF16" in choice.reason and "no faster" in choice.reason
    cpu_units("none")
    assert resolve_precision("auto", "cpu", width=768).precision == "fp32"


def test_matmul_width_is_the_median_linear_input_width() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64), torch.nn.Linear(64, 3)
    )
    assert matmul_width(model) == 64
    assert matmul_width(torch.nn.Conv2d(1, 2, 3)) is None


def test_auto_on_cuda_follows_bf16_support(monkeypatch: pytest.MonkeyPatch, cpu_units) -> None:
    cpu_units("amx")  # the CPU's units do not matter for a CUDA device
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda:0").precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda").precision == "fp32"


def test_explicit_precisions_are_kept_and_bad_ones_rejected(cpu_units) -> None:
    cpu_units("amx")
    for name in ("fp32", "bf16", "fp16"):
        assert resolve_precision(name, "cpu").precision == name
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("bf32", "cpu")


def test_bf16_asked_for_on_a_cpu_without_bf16_units_is_kept_with_a_warning(cpu_units) -> None:
    cpu_units("none")
    choice = resolve_precision("bf16", "cpu")
    assert choice.precision == "bf16" and "WARNING" in choice.describe() and "emulated" in choice.reason
    assert "WARNING" not in resolve_precision("fp32", "cpu").reason
    cpu_units("avx512_bf16")
    assert resolve_precision("bf16", "cpu").reason == "as configured"


def test_detection_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    def units_for(flags: str) -> str:
        fake = tmp_path / "cpuinfo"
        fake.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision_module, "CPUINFO", fake)
        cpu_bf16_units.cache_clear()
        try:
            return cpu_bf16_units()
        finally:
            cpu_bf16_units.cache_clear()

    assert units_for("fpu sse avx512f avx512_bf16 amx_bf16 amx_tile") == "amx"
    assert units_for("fpu sse avx512f avx512_bf16") == "avx512_bf16"
    assert units_for("fpu sse avx2") == "none"
    monkeypatch.setattr(precision_module, "CPUINFO", tmp_path / "missing")
    cpu_bf16_units.cache_clear()
    assert cpu_bf16_units() == "none"
    cpu_bf16_units.cache_clear()


def test_autocast_for_auto_uses_the_resolved_dtype(cpu_units) -> None:
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    cpu_units("amx")
    with autocast_for("auto", "cpu"):
        assert layer(x).dtype == torch.bfloat16
    cpu_units("avx512_bf16")
    with autocast_for("auto", "cpu"):
        assert layer(x).dtype == torch.float32


@pytest.mark.parametrize("units, used", [("amx", "bf16"), ("avx512_bf16", "fp32")])  # the tiny model: width 16
def test_run_reports_and_saves_what_auto_chose(tmp_path, capsys, cpu_units, units: str, used: str) -> None:
    cpu_units(units)
    config = tiny_config(str(tmp_path), "--schedule.epochs", "1", "--run_name", "auto")
    assert config.precision == "auto"  # the default
    result = fit(config, train_set=tiny_images(16), eval_set=tiny_images(8, seed=1))
    assert f"precision {used} (asked: auto" in capsys.readouterr().out
    assert load_config(result.run_dir / "config.yaml").precision == used  # eval runs as training did
    kernels = json.loads((result.run_dir / KERNELS_NAME).read_text())
    assert kernels["precision"] == used and kernels["precision_requested"] == "auto"
    dtype = "bfloat16" if used == "bf16" else "float32"
    assert kernels["attention_auto"] and all(dtype in key for key in kernels["attention_auto"])
