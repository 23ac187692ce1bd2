"""`bixt export`: ONNX (run with onnxruntime) and torch.export programs agree with the eager model, also at batch
sizes, resolutions, lengths and point counts other than the example's when exported as dynamic."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import bixt
from bixt.cli import main as cli
from bixt.export import export_model

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


def wake_zero_linears(model: nn.Module) -> nn.Module:
    # Classifiers start at zero (jax init): their output would match any graph. Give them weights.
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.5)
    return model.eval()


def run_onnx(path: Path, *inputs: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return torch.from_numpy(session.run(None, dict(zip(names, [x.numpy() for x in inputs], strict=True)))[0])


def test_image_model_onnx_with_dynamic_batch_and_resolution(tmp_path: Path) -> None:
    model = wake_zero_linears(
        bixt.create_model("bixt_ti_l64_p16s8", img_size=32, embed_dim=64, num_heads=2, depth=2, num_classes=7)
    )
    report = export_model(model, tmp_path / "m.onnx", format="onnx", dynamic_batch=True, dynamic_size=True)
    assert set(report.max_abs_diff) == {"example", "other sizes"} and max(report.max_abs_diff.values()) < 1e-4
    assert report.dynamic["x"] == {0: "Dim('batch', min=1, max=4096)", 2: "8*grid_h", 3: "8*grid_w"}
    x = torch.randn(1, 3, 56, 24)  # a batch size and a resolution of neither check
    with torch.no_grad():
        expected = model(x)
    np.testing.assert_allclose(run_onnx(report.path, x), expected, rtol=1e-3, atol=1e-4)


def test_sequence_model_onnx_takes_other_lengths(tmp_path: Path) -> None:
    model = wake_zero_linears(bixt.create_model("bixt_lra_listops", depth=2, max_length=256))
    report = export_model(model, tmp_path / "s.onnx", dynamic_batch=True, dynamic_size=True)
    assert report.input_names == ["ids"]
    ids = model.example_input(4, 200)  # padded samples included: the mask is derived inside the graph
    with torch.no_grad():
        expected = model(ids)
    np.testing.assert_allclose(run_onnx(report.path, ids), expected, rtol=1e-3, atol=1e-4)


def test_point_model_torch_export_takes_other_batches_and_point_counts(tmp_path: Path) -> None:
    model = wake_zero_linears(bixt.create_model("bixt_points_cls", depth=2))
    report = export_model(model, tmp_path / "p.pt2", format="torch-export", dynamic_batch=True, dynamic_size=True)
    program = torch.export.load(str(report.path)).module()
    points = torch.randn(5, 700, 3)
    with torch.no_grad():
        torch.testing.assert_close(program(points), model(points), rtol=1e-4, atol=1e-5)


def test_static_export_and_the_cli(tmp_path: Path) -> None:
    model = wake_zero_linears(bixt.create_model("bixt_ti_l64_p16", img_size=32, embed_dim=64, num_heads=2, depth=2))
    checkpoint = model.save_pretrained(tmp_path / "ckpt")
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["export", str(checkpoint), "--format", "torch-export"]) == 0
    report = json.loads(out.getvalue())
    assert report["output"] == str(checkpoint / "export" / "model.pt2") and report["dynamic"] == {}
    program = torch.export.load(report["output"]).module()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), rtol=1e-4, atol=1e-5)
    assert cli(["export", str(checkpoint), "--format", "torch-export"]) == 2  # never overwrites an export
    assert cli(["export", str(tmp_path / "missing")]) == 2
