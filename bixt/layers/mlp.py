"""The transformer MLP: Linear -> GELU (exact erf) -> Dropout -> Linear -> Dropout.

Training keeps one hidden activation per MLP instead of two: the second Linear needs GELU's output for its weight
gradient, and storing it beside GELU's input doubles the largest activation of a token-heavy model (the (b, n, 4d)
hidden layer). ``GeluLinear`` stores only the input and recomputes the GELU in the backward pass, an elementwise op
that costs little next to the matmuls. Results are unchanged: the forward pass runs the same ops, and the backward
pass uses autograd's own GELU derivative.

The recompute is one more GELU pass per MLP (2.8% of a BiXT-Ti/4 training step at 3,136 tokens, fp32, where it keeps
0.85 GB fewer activations; benchmarks/profile_ti_s4_3136_b8_fp32_base.txt), so it runs only where the hidden activation
is large (``RECOMPUTE_MIN_HIDDEN_ELEMENTS``); smaller MLPs (the latents', short inputs) keep GELU's output instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

# Hidden activations of at least this many elements (16 MiB in fp32; BiXT-Ti's token MLPs at batch 8 from 683 tokens
# on) are recomputed in the backward pass; below it the memory saved is small and the extra GELU pass is not worth it.
RECOMPUTE_MIN_HIDDEN_ELEMENTS = 2**22


class GeluLinear(torch.autograd.Function):
    """y = gelu(h) @ weight^T + bias, saving h (not gelu(h)) for the backward pass.

    h: (..., k); weight: (out, k); bias: (out,) or None -> (..., out). Under autocast the matmuls run in the
    autocast dtype, as ``F.linear`` would; gradients come back in each input's own dtype.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = F.linear(F.gelu(h), weight, bias)
        ctx.save_for_backward(h, weight)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        h, weight = ctx.saved_tensors
        grad_h = grad_weight = grad_bias = None
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_act = (grad_out @ weight.to(grad_out.dtype)).to(h.dtype)
            grad_h = torch.ops.aten.gelu_backward(grad_act, h)
        if ctx.needs_input_grad[1]:
            act = F.gelu(h).reshape(-1, h.shape[-1]).to(grad_out.dtype)
            grad_weight = (flat_grad.T @ act).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(0).to(ctx.bias_dtype)
        return grad_h, grad_weight, grad_bias


class Mlp(nn.Module):
    """Two-layer perceptron applied to each position independently.

    x: (..., dim) -> (..., dim)
    """

    def __init__(self, dim: int, hidden_dim: int, *, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        hidden_dropout = self.training and self.drop1.p > 0
        # An FX graph cannot branch on a traced size: it takes the plain path (same outputs and gradients).
        recompute = not hidden_dropout and not is_fx_symbolic_tracing() and torch.is_grad_enabled()
        if recompute and h.numel() >= RECOMPUTE_MIN_HIDDEN_ELEMENTS:
            return self.drop2(GeluLinear.apply(h, self.fc2.weight, self.fc2.bias))
        return self.drop2(self.fc2(self.drop1(self.act(h))))
