"""Every attention path agrees with the explicit reference, in float64, with padding masks and gradients."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from attention_helpers import (
    LOW_PRECISION_FLOOR,
    LOW_PRECISION_SLACK,
    assert_as_accurate_as_explicit,
    outputs_and_grads,
    ragged_mask,
    random_inputs,
)

from bixt.layers import attention_math
from bixt.layers.attention_chunked import chunked_attend, chunked_bidirectional_attend
from bixt.layers.attention_math import attend, bidirectional_attend
from bixt.layers.attention_paths import ATTENTION_PATHS, attention_path, get_attention_path, set_attention_path

# triton is checked apart, in a process of its own (below)
FAST_PATHS = [p for p in ATTENTION_PATHS if p not in ("auto", "explicit", "triton")]


def _inputs(b: int, h: int, m: int, n: int, d: int, latent_batch: int | None = None, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lb = b if latent_batch is None else latent_batch

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * 2).requires_grad_()

    return rand(lb, h, m, d), rand(lb, h, m, d), rand(b, h, n, d), rand(b, h, n, d)


def _mask(b: int, n: int, seed: int = 1) -> torch.Tensor:
    # ragged lengths from 1 to n real tokens, padding at the end
    lengths = torch.randint(1, n + 1, (b,), generator=torch.Generator().manual_seed(seed))
    lengths[0] = 1
    return torch.arange(n)[None, :] < lengths[:, None]


def _bidirectional(path: str, inputs, mask):
    with attention_path(path):
        lat, tok, _ = bidirectional_attend(*inputs, token_mask=mask)
    # weight the outputs so that every output element matters for the gradients
    gen = torch.Generator().manual_seed(7)
    loss = (lat * torch.randn(lat.shape, generator=gen, dtype=lat.dtype)).sum() + (
        tok * torch.randn(tok.shape, generator=gen, dtype=tok.dtype)
    ).sum()
    grads = torch.autograd.grad(loss, inputs)
    return lat, tok, grads


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("latent_batch", [None, 1])
def test_bidirectional_paths_match_explicit(path: str, masked: bool, latent_batch: int | None) -> None:
    b, h, m, n, d = 3, 2, 5, 37, 8
    inputs = _inputs(b, h, m, n, d, latent_batch)
    mask = _mask(b, n) if masked else None
    ref = _bidirectional("explicit", inputs, mask)
    got = _bidirectional(path, inputs, mask)
    for name, r, g in zip(("latents", "tokens"), ref[:2], got[:2], strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=f"{path} {name} output differs")
    for i, (r, g) in enumerate(zip(ref[2], got[2], strict=True)):
        assert g.shape == r.shape
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10, msg=f"{path} gradient of input {i} differs")
    if masked:
        assert (got[1][~mask[:, None, :, None].expand_as(got[1])] == 0).all(), "padded tokens must get no update"


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("j", [6, 29])  # 6 keys: explicit takes its transposed short-softmax branch
def test_one_sided_attend_paths_match_explicit(path: str, masked: bool, j: int) -> None:
    b, h, i, d = 2, 3, 4, 8
    q, _, k, v = _inputs(b, h, i, j, d, seed=3)
    mask = _mask(b, j, seed=4) if masked else None
    results = {}
    for p in ("explicit", path):
        with attention_path(p):
            out, _ = attend(q, k, v, key_mask=mask)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
        results[p] = (out, torch.autograd.grad((out * weights).sum(), (q, k, v)))
    torch.testing.assert_close(results[path][0], results["explicit"][0], rtol=1e-10, atol=1e-10)
    for r, g in zip(results["explicit"][1], results[path][1], strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)
    if masked:  # padded keys receive no gradient
        assert (results[path][1][1][~mask[:, None, :, None].expand(b, h, j, d)] == 0).all()


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["bidirectional", "one_sided"])
def test_bf16_paths_as_accurate_as_explicit(path: str, masked: bool, kind: str) -> None:
    # Tolerance: within 2x explicit's own bf16 error plus 2% of the largest value (tests/attention_helpers.py).
    inputs = random_inputs(2, 3, 16, 70, 16, dtype=torch.bfloat16, device="cpu")
    assert_as_accurate_as_explicit(path, inputs, ragged_mask(2, 70, "cpu") if masked else None, kind)


@pytest.mark.parametrize("kind", ["bidirectional", "one_sided"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_short_softmax_rule_keeps_the_explicit_numbers(monkeypatch, kind: str, masked: bool, dtype) -> None:
    # 8 latents and 12 tokens / keys: every softmax axis is short, so on CPU the rule computes bf16 softmaxes in fp32
    # and the one-sided attention over its transposed similarity. Against the rule turned off (axis limit 0): the
    # same numbers in float64; in bf16, as close to float64 as the plain kernel is (tests/attention_helpers.py).
    inputs = random_inputs(3, 2, 8, 12, 8, dtype=dtype, device="cpu")
    mask = ragged_mask(3, 12, "cpu") if masked else None
    monkeypatch.setattr(attention_math, "SHORT_SOFTMAX_AXIS", attention_math.SHORT_SOFTMAX_AXIS_AVX512)
    with_rule = outputs_and_grads("explicit", inputs, mask, kind)
    monkeypatch.setattr(attention_math, "SHORT_SOFTMAX_AXIS", 0)
    plain = outputs_and_grads("explicit", inputs, mask, kind)
    reference = outputs_and_grads("explicit", [x.double() for x in inputs], mask, kind)
    assert len(with_rule) == len(plain) == len(reference)
    for got, off, ref in zip(with_rule, plain, reference, strict=True):
        if dtype == torch.float64:
            torch.testing.assert_close(got, off, rtol=1e-12, atol=1e-12)
        else:
            scale = ref.abs().max()
            err_rule, err_plain = ((got - ref).abs().max() / scale).item(), ((off - ref).abs().max() / scale).item()
            assert err_rule <= LOW_PRECISION_SLACK * err_plain + LOW_PRECISION_FLOOR[dtype], (err_rule, err_plain)
    if masked and kind == "one_sided":  # padded keys give no gradient to their keys and values
        padded = ~mask[:, None, :, None].expand_as(inputs[2])
        assert (with_rule[2][padded] == 0).all() and (with_rule[3][padded] == 0).all()


@pytest.mark.parametrize("capability, length", [("AVX512", 16), ("AVX2", 0), ("DEFAULT", 0)])
def test_short_softmax_rules_apply_where_cpu_kernels_run_at_avx512(capability: str, length: int) -> None:
    # measured (BENCHMARKS.md §6.8): the rules pay on an AVX-512 CPU and not on an AVX2 one, so they are off there
    assert attention_math.short_softmax_axis(capability) == length
    current = torch.backends.cpu.get_cpu_capability()
    assert attention_math.short_softmax_axis(current) == attention_math.SHORT_SOFTMAX_AXIS


@pytest.mark.parametrize(
    "dtype, tokens, bidirectional, one_sided",
    [
        (
            torch.bfloat16,
            12,
            "softmax over 12 tokens in fp32; softmax over 8 latents in fp32",
            "similarity transposed for its 12 keys; softmax over 12 keys in fp32",
        ),
        (torch.bfloat16, 40, "softmax over 8 latents in fp32", ""),
        (torch.float64, 12, "", "similarity transposed for its 12 keys"),
        (torch.float64, 40, "", ""),
    ],
)
def test_auto_records_the_short_softmax_rules_explicit_applied(
    monkeypatch, dtype, tokens: int, bidirectional: str, one_sided: str
) -> None:
    # kernels.json and the bench records say what ran: the explicit path with the rules that applied (here as on an
    # AVX-512 CPU, whatever this one is), in brackets
    from bixt.layers.attention_paths import auto_choices, clear_auto_choices

    monkeypatch.setattr(attention_math, "SHORT_SOFTMAX_AXIS", attention_math.SHORT_SOFTMAX_AXIS_AVX512)

    r_latents, v_latents, r_tokens, v_tokens = random_inputs(2, 2, 8, tokens, 8, dtype=dtype, device="cpu")
    clear_auto_choices()
    with attention_path("auto"):
        bidirectional_attend(r_latents, v_latents, r_tokens, v_tokens)
        attend(r_latents, r_tokens, v_tokens)
    name = str(dtype).removeprefix("torch.")
    assert auto_choices() == {
        f"bidirectional 2,2,8,{tokens} {name} cpu": f"explicit ({bidirectional})" if bidirectional else "explicit",
        f"attend 2,2,8,{tokens} {name} cpu": f"explicit ({one_sided})" if one_sided else "explicit",
    }


@pytest.mark.parametrize("chunk_size", [1, 5, 37, 100])
def test_chunk_size_does_not_change_the_result(chunk_size: int) -> None:
    inputs = _inputs(2, 2, 4, 37, 8, seed=9)
    mask = _mask(2, 37, seed=10)
    ref_lat, ref_tok = chunked_bidirectional_attend(*inputs, token_mask=mask, chunk_size=37)
    lat, tok = chunked_bidirectional_attend(*inputs, token_mask=mask, chunk_size=chunk_size)
    torch.testing.assert_close(lat, ref_lat, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tok, ref_tok, rtol=1e-12, atol=1e-12)


def test_chunked_gradcheck() -> None:
    # Finite differences against the hand-written backward, including a chunk that holds only padding.
    inputs = _inputs(2, 1, 3, 7, 4, seed=11)
    mask = torch.tensor([[True, True, False, False, False, False, False], [True] * 7])
    assert torch.autograd.gradcheck(
        lambda *x: chunked_bidirectional_attend(*x, token_mask=mask, chunk_size=2), inputs, eps=1e-6, atol=1e-6
    )
    q, _, k, v = inputs
    assert torch.autograd.gradcheck(lambda *x: chunked_attend(*x, key_mask=mask, chunk_size=3), (q, k, v))


def test_chunked_large_logits_are_stable() -> None:
    # Similarities in the hundreds: a naive exp would overflow; the online softmax must not.
    r_lat, v_lat, r_tok, v_tok = (t.detach() * 40 for t in _inputs(1, 1, 3, 50, 8, seed=12))
    lat, tok = chunked_bidirectional_attend(r_lat, v_lat, r_tok, v_tok, chunk_size=7)
    with attention_path("explicit"):
        ref_lat, ref_tok, _ = bidirectional_attend(r_lat, v_lat, r_tok, v_tok)
    assert torch.isfinite(lat).all() and torch.isfinite(tok).all()
    torch.testing.assert_close(lat, ref_lat)
    torch.testing.assert_close(tok, ref_tok)


def test_float32_chunked_close_to_explicit_in_a_model_layer() -> None:
    from bixt.layers.attention import BiCrossAttention

    torch.manual_seed(0)
    layer = BiCrossAttention(32, 32, num_heads=4)
    latents, tokens = torch.randn(1, 6, 32), torch.randn(3, 50, 32)  # latents shared over the batch
    outs = {}
    for p in ("explicit", "chunked"):
        with attention_path(p):
            lat, tok, _ = layer(latents, tokens)
        (lat.square().sum() + tok.square().sum()).backward()
        outs[p] = (lat, tok, layer.rv_latents.weight.grad.clone(), layer.rv_tokens.weight.grad.clone())
        layer.zero_grad()
    for r, g in zip(outs["explicit"], outs["chunked"], strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_path_switch_from_python_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIXT_ATTN", "chunked")
    assert get_attention_path() == "chunked"
    with attention_path("explicit"):
        assert get_attention_path() == "explicit"
    assert get_attention_path() == "chunked"
    set_attention_path("fused")
    try:
        assert get_attention_path() == "fused"
    finally:
        set_attention_path(None)
    monkeypatch.setenv("BIXT_ATTN", "sparse")
    with pytest.raises(ValueError, match="attention path"):
        get_attention_path()


def test_chunked_rejects_dropout_and_bad_input() -> None:
    inputs = _inputs(1, 1, 2, 5, 4)
    with attention_path("chunked"), pytest.raises(ValueError, match="dropout"):
        bidirectional_attend(*inputs, dropout_p=0.1)
    with pytest.raises(ValueError, match="token_mask"):
        chunked_bidirectional_attend(*inputs, token_mask=torch.ones(1, 5))
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_bidirectional_attend(*inputs, chunk_size=0)


_TRITON_CHECK = textwrap.dedent(
    """
    import torch
    from bixt.layers.attention_math import attend, bidirectional_attend
    from bixt.layers.attention_paths import attention_path

    gen = torch.Generator().manual_seed(0)
    b, h, m, n, d = 2, 2, 5, 150, 8  # 150 tokens: three blocks of the kernel's 64, the last one partial
    def rand(*shape):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    inputs = [rand(1, h, m, d), rand(1, h, m, d), rand(b, h, n, d), rand(b, h, n, d)]  # latents shared
    mask = torch.arange(n)[None, :] < torch.tensor([[70], [n]])  # sample 0: the last block is all padding
    weights = [torch.randn(b, h, m, d, generator=gen, dtype=torch.float64),
               torch.randn(b, h, n, d, generator=gen, dtype=torch.float64)]
    results = {}
    for path in ("explicit", "triton"):
        with attention_path(path):
            lat, tok, _ = bidirectional_attend(*inputs, token_mask=mask)
            one, _ = attend(inputs[0], inputs[2], inputs[3], key_mask=mask)
        loss = (lat * weights[0]).sum() + (tok * weights[1]).sum() + (one * weights[0]).sum()
        results[path] = [lat, tok, one, *torch.autograd.grad(loss, inputs)]
    for ref, got in zip(results["explicit"], results["triton"], strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-10)
    print("triton ok")
    """
)


def test_triton_path_matches_explicit_under_interpreter() -> None:
    # Triton decides at import whether it interprets, so the check runs in a fresh process with TRITON_INTERPRET=1.
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", _TRITON_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "triton ok" in done.stdout


@pytest.mark.parametrize("limit, expect_fused", [(10**9, False), (0, True)])
def test_auto_computes_small_similarities_explicitly(monkeypatch, limit: int, expect_fused: bool) -> None:
    # auto: explicit up to the rule's number of (b, h, m, n) elements, its large path above; the choice is recorded
    import bixt.layers.attention_math as math_module
    import bixt.layers.attention_paths as paths_module

    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(math_module.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    rule = paths_module.AutoRule(limit, "fused", "test")
    monkeypatch.setattr(paths_module, "AUTO_RULES", {("cpu", torch.float64): rule})
    monkeypatch.setattr(math_module, "SHORT_SOFTMAX_AXIS", math_module.SHORT_SOFTMAX_AXIS_AVX512)
    inputs = _inputs(2, 2, 4, 9, 8)
    paths_module.clear_auto_choices()
    with attention_path("auto"):
        lat, tok, _ = bidirectional_attend(*inputs)
        out, _ = attend(inputs[0], inputs[2], inputs[3])
    assert bool(calls) == expect_fused
    # explicit is recorded with the short-softmax rule it applies (as on an AVX-512 CPU): 9 keys, fewer than 16
    assert paths_module.auto_choices() == {
        "bidirectional 2,2,4,9 float64 cpu": "fused" if expect_fused else "explicit",
        "attend 2,2,4,9 float64 cpu": "fused" if expect_fused else "explicit (similarity transposed for its 9 keys)",
    }
    with attention_path("explicit"):
        ref_lat, ref_tok, _ = bidirectional_attend(*inputs)
        ref_out, _ = attend(inputs[0], inputs[2], inputs[3])
    for got, ref in ((lat, ref_lat), (tok, ref_tok), (out, ref_out)):
        torch.testing.assert_close(got, ref)


def test_bf16_cpu_rule_takes_the_flash_kernel_for_large_square_attention_only() -> None:
    # measured (BENCHMARKS.md §6.2): explicit, then chunks, for BiXT's few latent queries; flash for a Transformer's
    # n x n attention
    from bixt.layers.attention_paths import AUTO_RULES

    rule = AUTO_RULES[("cpu", torch.bfloat16)]
    assert rule.path_for(8, 6, 64, 3136) == "explicit"  # BiXT-Ti/4: 64 latents against 3,136 tokens
    assert rule.path_for(256, 2, 32, 4096) == "explicit"  # the LRA model at batch 256: 67M elements, not square
    assert rule.path_for(8, 6, 64, 50176) == "chunked"  # BiXT-Ti/4 at 896 px: 154M similarity elements
    assert rule.path_for(8, 2, 1024, 1024) == "fused"  # a Transformer at 1,024 tokens
    assert rule.path_for(1, 1, 256, 256) == "explicit"  # small matrices stay explicit whatever their shape
    assert AUTO_RULES[("cpu", torch.float32)].path_for(8, 2, 1024, 1024) == "fused"


def test_a_square_attention_rule_is_given_whole_or_not_at_all() -> None:
    from bixt.layers.attention_paths import AutoRule

    with pytest.raises(ValueError, match="square_explicit_max"):
        AutoRule(2**20, "fused", "test", square_min=256)  # would fail only when a square call came
    with pytest.raises(ValueError, match="square-attention rule"):
        AutoRule(2**20, "fused", "test", square_min=256, square_explicit_max=2**22)
    assert AutoRule(2**20, "fused", "test", 256, 2**22, "fused").path_for(1, 1, 512, 512) == "explicit"


def test_resolved_attention_path_names_the_forced_path_or_the_auto_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from bixt.layers.attention import BiCrossAttention
    from bixt.layers.attention_paths import AUTO_RULES, resolved_attention_path

    monkeypatch.delenv("BIXT_ATTN", raising=False)
    layer = BiCrossAttention(16, 16, num_heads=2)
    with attention_path("chunked"):
        assert resolved_attention_path(layer, "cpu", torch.float32) == "chunked"
    bf16 = resolved_attention_path(layer, torch.device("cpu"), torch.bfloat16)
    rule = AUTO_RULES[("cpu", torch.bfloat16)]
    assert bf16.startswith(f"auto: explicit up to {rule.explicit_max_similarity} ") and "chunked above" in bf16
    # with attention dropout, training under auto falls back from the chunked path to the fused one
    dropping = BiCrossAttention(16, 16, num_heads=2, attn_drop=0.1)
    assert "fused above" in resolved_attention_path(dropping, "cpu", torch.bfloat16)
    assert "fused above" in resolved_attention_path(layer, "cuda", torch.float16)  # unmeasured: the fp32 CPU rule
