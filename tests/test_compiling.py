"""``compile: true``: torch.compile with a fallback to eager that says why (the compiler's failure is simulated)."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.exc import TorchDynamoException

import bixt.engine.compiling as compiling


def test_compile_falls_back_to_eager_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_compile(module):
        def call(*args, **kwargs):
            raise TorchDynamoException("no working C++ compiler found")

        return call

    monkeypatch.setattr(compiling.torch, "compile", failing_compile)
    messages: list[str] = []
    layer = torch.nn.Linear(3, 2)
    model = compiling.CompiledWithFallback(layer, log=messages.append)
    x = torch.randn(4, 3)
    torch.testing.assert_close(model(x), layer(x))
    model(x)  # reported once
    assert messages == [
        "torch.compile failed (TorchDynamoException: no working C++ compiler found); running the model eagerly"
    ]
    assert list(model.state_dict()) == ["module.weight", "module.bias"]


def test_compile_does_not_hide_errors_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiling.torch, "compile", lambda module: module)
    model = compiling.CompiledWithFallback(torch.nn.Linear(3, 2), log=pytest.fail)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        model(torch.randn(4, 5))
