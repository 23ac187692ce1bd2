"""On a CUDA device: the fused, chunked and Triton attention paths against explicit, in fp32 and bf16, with padding
masks and gradients (tolerance: tests/attention_helpers.py). Skipped where no CUDA device is present;
`benchmarks/gpu_check.sh` runs them with the GPU throughput check."""

from __future__ import annotations

import pytest
import torch
from attention_helpers import assert_as_accurate_as_explicit, ragged_mask, random_inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _needs_triton(path: str) -> None:
    if path == "triton":
        pytest.importorskip("triton")


@pytest.fixture(autouse=True)
def _no_tf32():
    # fp32 means fp32: TF32 matmuls would round to 10 mantissa bits and blur the fp32 comparison.
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("path", ["fused", "chunked", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("kind", ["bidirectional", "one_sided"])
def test_gpu_path_as_accurate_as_explicit(path: str, dtype: torch.dtype, masked: bool, kind: str) -> None:
    _needs_triton(path)
    b, h, m, n, d = 3, 4, 64, 300, 32  # 300 tokens: several kernel blocks, the last one partial
    inputs = random_inputs(b, h, m, n, d, dtype=dtype, device="cuda")
    mask = ragged_mask(b, n, "cuda") if masked else None
    assert_as_accurate_as_explicit(path, inputs, mask, kind)


@pytest.mark.parametrize("path", ["fused", "chunked", "triton"])
def test_gpu_padded_tokens_get_no_update(path: str) -> None:
    _needs_triton(path)
    from bixt.layers.attention_math import bidirectional_attend
    from bixt.layers.attention_paths import attention_path

    inputs = random_inputs(2, 2, 16, 130, 16, dtype=torch.bfloat16, device="cuda")
    mask = ragged_mask(2, 130, "cuda")
    with attention_path(path):
        _, tokens, _ = bidirectional_attend(*inputs, token_mask=mask)
    assert (tokens[~mask[:, None, :, None].expand_as(tokens)] == 0).all()


def test_gpu_model_step_under_bf16_autocast_matches_explicit() -> None:
    # A whole BiXT training step: auto (whatever it picks on this GPU) and explicit give close losses and gradients.
    import bixt
    from bixt.layers.attention_paths import attention_path

    torch.manual_seed(0)
    model = bixt.create_model("bixt_ti_l64_p16", num_classes=10).cuda().eval()  # no drop-path: both runs alike
    images, labels = torch.randn(4, 3, 224, 224, device="cuda"), torch.randint(0, 10, (4,), device="cuda")
    results = {}
    for path in ("explicit", "auto"):
        with attention_path(path), torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        results[path] = (loss.detach(), torch.cat([g.flatten() for g in grads]))
    torch.testing.assert_close(results["auto"][0], results["explicit"][0], rtol=2e-2, atol=2e-2)
    cosine = torch.nn.functional.cosine_similarity(results["auto"][1], results["explicit"][1], dim=0)
    assert cosine > 0.99, f"gradient direction differs between auto and explicit: cosine {cosine:.4f}"
