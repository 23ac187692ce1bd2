"""Runs timm's own model tests (test_models.py, fetched by fetch_timm_tests.py) on bixt's timm models only.

Which bixt models: ``$BIXT_TIMM_MODELS`` — unset: a few representative ones (`make test`); ``all``: every bixt model
registered in timm (the longer run in the README); or a comma-separated list of names.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torchvision_cpu_shim  # noqa: F401  (before timm: lets PyPI's CUDA torchvision import next to CPU torch)

from bixt.timm_interop import timm_model_names

# one of each: patch stem at 224 (d12), conv stem (d13), overlapping patches + LayerScale fine-tuned at 384
REPRESENTATIVE = ("bixt_ti_l64_p16", "bixt_ti_cnv_l64_d13_p8", "bixt_ed256LS_l64_p16s8_ft384")

TIMM_MARKERS = (
    "base",
    "forward",
    "backward",
    "cfg",
    "cfg_nonstd",
    "torchscript",
    "features",
    "fxforward",
    "fxbackward",
    "timeout",
)

# torch.jit.script compiles a subset of Python that bixt's layers are not written in (its first refusal: keyword-only
# arguments with defaults, in bixt.layers.pos_embed); timm exempts several of its own families too. torch.fx,
# torch.export and ONNX export work (the fx tests here, tests/test_export.py).
TORCHSCRIPT_TESTS = ("test_model_forward_torchscript", "test_model_forward_fx_torchscript")


def selected_models() -> set[str]:
    choice = os.environ.get("BIXT_TIMM_MODELS", "")
    known = timm_model_names()
    if choice == "all":
        return set(known)
    names = set(choice.split(",")) if choice else set(REPRESENTATIVE)
    unknown = sorted(names - set(known))
    if unknown:
        raise pytest.UsageError(f"BIXT_TIMM_MODELS names {unknown}, not bixt models in timm; known: {known}")
    return names


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (Path(__file__).parent / "test_models.py").is_file():
        terminalreporter.write_line(
            "timm's model tests NOT RUN: fetch them with `python tests/timm_contract/fetch_timm_tests.py`", yellow=True
        )


def pytest_configure(config: pytest.Config) -> None:
    for marker in TIMM_MARKERS:
        config.addinivalue_line("markers", f"{marker}: timm's test_models.py marker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep, of timm's tests, only those parametrised with a selected bixt model."""
    models = selected_models()
    keep, drop = [], []
    for item in items:
        if item.path.name != "test_models.py" or item.path.parent.name != "timm_contract":
            keep.append(item)
            continue
        params = getattr(item, "callspec", None)
        model = params.params.get("model_name") if params else None
        (keep if model in models else drop).append(item)
        if model in models and item.originalname in TORCHSCRIPT_TESTS:
            item.add_marker(pytest.mark.skip(reason="bixt's layers are not written for torch.jit.script (conftest.py)"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
