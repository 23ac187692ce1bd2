"""The MLP's recomputing GELU: same outputs and gradients as the plain composition, one hidden activation fewer; and the
memory mode ``low``'s pre-norm branches (MLP and attention input projection) that keep only their input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import torch

import bixt.layers.mlp as mlp_module
import bixt.layers.norm_linear as norm_linear_module
from bixt.layers.mlp import Mlp, get_mlp_memory, mlp_memory, norm_then_mlp
from bixt.layers.norm_linear import norm_then_linear


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


# -- the pre-norm branch that keeps only its input ------------------------------------------------------------------


@pytest.fixture
def always_from_input(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 0)
    with mlp_memory("low"):
        yield


def _assert_the_same_bf16_outputs_and_gradients(out, expected, inputs) -> None:
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(out)
    got, want = torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2)  # the same bf16 ops, summed in another order


def _norm_and_mlp(dim: int = 16, dtype: torch.dtype = torch.float32) -> tuple[torch.nn.LayerNorm, Mlp]:
    torch.manual_seed(0)
    norm, mlp = torch.nn.LayerNorm(dim, eps=1e-6).to(dtype), Mlp(dim, 4 * dim).to(dtype)
    with torch.no_grad():  # off the identity, so that a wrong norm gradient shows
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm, mlp


def test_norm_then_mlp_from_input_matches_the_plain_composition_in_float64(always_from_input) -> None:
    norm, mlp = _norm_and_mlp(dtype=torch.float64)
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    inputs = (x, *norm.parameters(), *mlp.parameters())
    out = norm_then_mlp(x, norm, mlp)
    assert out.grad_fn.name().startswith("NormMlpFromInput")  # the recomputing path ran, not the plain one
    expected = _plain(mlp, norm(x))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(out)
    for got, want in zip(
        torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_norm_then_mlp_from_input_keeps_neither_the_hidden_layer_nor_the_norm_output(
    always_from_input, always_recompute
) -> None:
    norm, mlp = _norm_and_mlp()
    x = torch.randn(5, 11, 16, requires_grad=True)
    saved = _saved_bytes(lambda t: norm_then_mlp(t, norm, mlp), x)
    plain = _saved_bytes(lambda t: mlp(norm(t)), x)  # the GELU-recomputing MLP: keeps fc1's input and output
    # fewer: the norm's output (16 wide) and fc1's (64 wide), and the norm's mean and 1/std (one each per row); one
    # more: fc1's bias (64), to recompute fc1
    assert plain - saved == 5 * 11 * (16 + 64) * 4 + 2 * 5 * 11 * 4 - 64 * 4


def test_norm_then_mlp_from_input_under_bf16_autocast_recomputes_what_the_forward_computed(always_from_input) -> None:
    norm, mlp = _norm_and_mlp()
    x = torch.randn(2, 5, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm_then_mlp(x, norm, mlp)
        expected = _plain(mlp, norm(x))
    _assert_the_same_bf16_outputs_and_gradients(out, expected, (x, *norm.parameters(), *mlp.parameters()))


def _from_input(out: torch.Tensor) -> bool:
    return out.grad_fn.name().startswith("NormMlpFromInput")


def test_norm_then_mlp_keeps_its_input_only_in_the_low_memory_mode_and_above_the_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    norm, mlp = _norm_and_mlp()
    x = torch.randn(5, 11, 16, requires_grad=True)
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 5 * 11 * 64)
    monkeypatch.delenv("BIXT_MLP_MEMORY", raising=False)
    assert get_mlp_memory() == "fast" and not _from_input(norm_then_mlp(x, norm, mlp))  # the default
    monkeypatch.setenv("BIXT_MLP_MEMORY", "low")  # as a benchmark sets it from outside
    assert _from_input(norm_then_mlp(x, norm, mlp))
    with mlp_memory("fast"):  # set in Python, it wins over the environment
        assert not _from_input(norm_then_mlp(x, norm, mlp))
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 5 * 11 * 64 + 1)
    assert not _from_input(norm_then_mlp(x, norm, mlp))  # below the size
    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 0)
    assert not _from_input(norm_then_mlp(x, norm, Mlp(16, 64, drop=0.1).train()))  # hidden dropout needs its mask
    monkeypatch.setenv("BIXT_MLP_MEMORY", "tiny")
    with pytest.raises(ValueError, match=re.escape("MLP memory mode must be one of ('fast', 'low'), got 'tiny'")):
        norm_then_mlp(x, norm, mlp)


# -- the pre-norm projection that keeps only its input --------------------------------------------------------------


def _norm_and_linear(dtype: torch.dtype = torch.float32) -> tuple[torch.nn.LayerNorm, torch.nn.Linear]:
    norm, _ = _norm_and_mlp(dtype=dtype)
    return norm, torch.nn.Linear(16, 24).to(dtype)


def test_norm_then_linear_from_input_matches_the_plain_composition_in_float64(always_from_input) -> None:
    norm, linear = _norm_and_linear(torch.float64)
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    inputs = (x, *norm.parameters(), *linear.parameters())
    out = norm_then_linear(x, norm, linear)
    assert out.grad_fn.name().startswith("NormLinearFromInput")
    expected = linear(norm(x))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(out)
    for got, want in zip(
        torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_norm_then_linear_from_input_does_not_keep_the_norm_output(always_from_input) -> None:
    norm, linear = _norm_and_linear()
    x = torch.randn(5, 11, 16, requires_grad=True)
    saved = _saved_bytes(lambda t: norm_then_linear(t, norm, linear), x)
    plain = _saved_bytes(lambda t: linear(norm(t)), x)
    # fewer: the norm's output (16 wide) and its mean and 1/std (one each per row)
    assert plain - saved == 5 * 11 * 16 * 4 + 2 * 5 * 11 * 4


def test_norm_then_linear_from_input_under_bf16_autocast_recomputes_what_the_forward_computed(
    always_from_input,
) -> None:
    norm, linear = _norm_and_linear()
    x = torch.randn(2, 5, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm_then_linear(x, norm, linear)
        expected = linear(norm(x))
    _assert_the_same_bf16_outputs_and_gradients(out, expected, (x, *norm.parameters(), *linear.parameters()))


def test_norm_then_linear_keeps_its_input_only_in_the_low_memory_mode_above_the_size_with_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    norm, linear = _norm_and_linear()
    x = torch.randn(5, 11, 16, requires_grad=True)

    def from_input() -> bool:
        out = norm_then_linear(x, norm, linear)
        return out.grad_fn is not None and out.grad_fn.name().startswith("NormLinearFromInput")

    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", x.numel())
    assert not from_input()  # the default mode is fast
    with mlp_memory("low"):
        assert from_input()
        with torch.no_grad():
            assert not from_input()  # nothing is kept without gradients
        monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", x.numel() + 1)
        assert not from_input()  # below the size


def _count_applies(monkeypatch: pytest.MonkeyPatch, function: type[torch.autograd.Function]) -> list[int]:
    calls: list[int] = []
    apply = function.apply
    monkeypatch.setattr(function, "apply", lambda *args: calls.append(1) or apply(*args))
    return calls


@pytest.mark.parametrize("name", ["bixt_ti_l64_p16", "sequential_ti_l64_p16", "transformer_lra_listops"])
def test_models_train_alike_with_and_without_the_input_only_branches(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # every pre-norm MLP branch and attention projection of BiXT's layers, the sequential baseline's (its latent
    # blocks) and the Transformer's blocks
    import bixt

    small = {"embed_dim": 32, "depth": 2, "num_heads": 2}
    if name == "transformer_lra_listops":
        model, inputs = bixt.create_model(name, **small).double(), (torch.randint(1, 16, (2, 40)),)
    else:
        model = bixt.create_model(name, img_size=32, num_classes=5, num_latents=8, **small).double()
        inputs = (torch.randn(2, 3, 32, 32, dtype=torch.float64),)

    def grads(mode: str) -> list[torch.Tensor]:
        model.zero_grad()
        with mlp_memory(mode):
            model(*inputs).sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    monkeypatch.setattr(mlp_module, "RECOMPUTE_MIN_HIDDEN_ELEMENTS", 0)

    mlp_calls = _count_applies(monkeypatch, mlp_module.NormMlpFromInput)
    projection_calls = _count_applies(monkeypatch, norm_linear_module.NormLinearFromInput)
    plain = grads("fast")
    assert not mlp_calls and not projection_calls
    from_input = grads("low")
    # both input-only branches ran in every layer, at least once each
    assert len(mlp_calls) >= small["depth"] and len(projection_calls) >= small["depth"]
    assert len(plain) == len(from_input) > 0
    for a, b in zip(plain, from_input, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
