"""Low-precision checks of the attention paths, shared by the CPU tests and the GPU tests.

A path in bf16 (or fp32 on a GPU) cannot match explicit bit for bit; what it must do is be as accurate as the explicit
path in the same dtype. Both are compared with the explicit path in float64 on the same (rounded) inputs, and a path's
largest error, relative to the reference's largest magnitude, may exceed explicit's own by at most `LOW_PRECISION_SLACK`
times plus `LOW_PRECISION_FLOOR` (bf16 keeps 8 bits of mantissa: one rounding is ~0.4%).
"""

from __future__ import annotations

import torch

from bixt.layers.attention_math import attend, bidirectional_attend
from bixt.layers.attention_paths import attention_path

LOW_PRECISION_SLACK = 2.0
LOW_PRECISION_FLOOR = {torch.bfloat16: 2e-2, torch.float16: 4e-3, torch.float32: 1e-5}


def random_inputs(b: int, h: int, m: int, n: int, d: int, *, dtype: torch.dtype, device: str, seed: int = 0):
    """R_lat, V_lat (b, h, m, d), R_tok, V_tok (b, h, n, d), rounded to `dtype` once, as leaf tensors."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, length, d, generator=gen).to(device, dtype) for length in (m, m, n, n)]


def ragged_mask(b: int, n: int, device: str, seed: int = 1) -> torch.Tensor:
    """(b, n) bool, True for real tokens; sample 0 keeps a single real token."""
    lengths = torch.randint(1, n + 1, (b,), generator=torch.Generator().manual_seed(seed))
    lengths[0] = 1
    return (torch.arange(n)[None, :] < lengths[:, None]).to(device)


def outputs_and_grads(path: str, inputs, mask, kind: str) -> list[torch.Tensor]:
    """Outputs and input gradients of one attention call under `path`, in float64 on the CPU for comparing."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    with attention_path(path):
        if kind == "bidirectional":
            outs = list(bidirectional_attend(*leaves, token_mask=mask)[:2])
        else:
            outs = [attend(leaves[0], leaves[2], leaves[3], key_mask=mask)[0]]
    gen = torch.Generator().manual_seed(7)
    weights = [torch.randn(o.shape, generator=gen).to(o.device, o.dtype) for o in outs]
    loss = sum((o.float() * w.float()).sum() for o, w in zip(outs, weights, strict=True))
    used = leaves if kind == "bidirectional" else [leaves[0], leaves[2], leaves[3]]
    grads = torch.autograd.grad(loss, used)
    return [t.detach().double().cpu() for t in (*outs, *grads)]


def assert_as_accurate_as_explicit(path: str, inputs, mask, kind: str) -> None:
    """`path` in the inputs' dtype is within the stated tolerance of explicit in float64 (module docstring)."""
    dtype = inputs[0].dtype
    reference = outputs_and_grads("explicit", [x.double() for x in inputs], mask, kind)
    explicit = outputs_and_grads("explicit", inputs, mask, kind)
    got = outputs_and_grads(path, inputs, mask, kind)
    names = ["latents", "tokens"] if kind == "bidirectional" else ["output"]
    names += [f"grad {i}" for i in range(len(reference) - len(names))]
    for name, ref, exp, g in zip(names, reference, explicit, got, strict=True):
        scale = ref.abs().max().clamp_min(1e-12)
        err_explicit = ((exp - ref).abs().max() / scale).item()
        err_path = ((g - ref).abs().max() / scale).item()
        limit = LOW_PRECISION_SLACK * err_explicit + LOW_PRECISION_FLOOR[dtype]
        assert err_path <= limit, (
            f"{path} {kind} {name} in {dtype}: relative error {err_path:.2e} against float64, explicit's own "
            f"{err_explicit:.2e}, allowed {limit:.2e}"
        )
