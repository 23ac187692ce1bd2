"""The MLP's recomputing GELU: same outputs and gradients as the plain composition, one hidden activation fewer."""

from __future__ import annotations

import pytest
import torch

import bixt.layers.mlp as mlp_module
from bixt.layers.mlp import Mlp


@pytest.fixture
def always_recompute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 0)


def _plain(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    return mlp.fc2(mlp.act(mlp.fc1(x)))


def _saved_bytes(fn, x: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(storages.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recomputing_mlp_matches_plain_composition(dtype: torch.dtype, always_recompute) -> None:
    torch.manual_seed(0)
    mlp = Mlp(16, 64).to(dtype)
    x = torch.randn(3, 7, 16, dtype=dtype, requires_grad=True)
    inputs = (x, *mlp.parameters())
    out = mlp(x)
    grad = torch.randn_like(out)
    expected_out = _plain(mlp, x)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=0)
    for got, expected in zip(
        torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected_out, inputs, grad), strict=True
    ):
        torch.testing.assert_close(got, expected)


def test_recomputing_mlp_keeps_one_hidden_activation_fewer(always_recompute) -> None:
    mlp = Mlp(16, 64)
    x = torch.randn(5, 11, 16, requires_grad=True)
    hidden_bytes = 5 * 11 * 64 * 4
    assert _saved_bytes(_plain.__get__(mlp), x) - _saved_bytes(mlp, x) == hidden_bytes


def test_recomputing_mlp_under_bf16_autocast_returns_gradients_in_parameter_dtype(always_recompute) -> None:
    mlp = Mlp(16, 64)
    x = torch.randn(2, 5, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mlp(x)
        expected = _plain(mlp, x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in mlp.parameters())


def test_small_hidden_activations_are_kept_not_recomputed(monkeypatch: pytest.MonkeyPatch) -> None:
    mlp = Mlp(16, 64)
    x = torch.randn(5, 11, 16, requires_grad=True)
    hidden = 5 * 11 * 64
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", hidden + 1)
    assert _saved_bytes(mlp, x) == _saved_bytes(_plain.__get__(mlp), x)
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", hidden)
    assert _saved_bytes(_plain.__get__(mlp), x) - _saved_bytes(mlp, x) == hidden * 4


def test_hidden_dropout_uses_the_plain_composition() -> None:
    # dropout between GELU and fc2 needs its mask, so training with it keeps the ordinary graph
    mlp = Mlp(16, 64, drop=0.5).train()
    x = torch.randn(2, 3, 16, requires_grad=True)
    torch.manual_seed(1)
    out = mlp(x)
    torch.manual_seed(1)
    expected = mlp.drop2(mlp.fc2(mlp.drop1(mlp.act(mlp.fc1(x)))))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
