"""The transformer MLP: Linear -> GELU (exact erf) -> Dropout -> Linear -> Dropout.

Training keeps one hidden activation per MLP instead of two: the second Linear needs GELU's output for its weight
gradient, and storing it beside GELU's input doubles the largest activation of a token-heavy model (the (b, n, 4d)
hidden layer). ``GeluLinear`` stores only the input and recomputes the GELU in the backward pass, an elementwise op
that costs little next to the matmuls. Results are unchanged: the forward pass runs the same ops, and the backward
pass uses autograd's own GELU derivative.

The recompute is one more GELU pass per MLP (2.8% of a BiXT-Ti/4 training step at 3,136 tokens, fp32, where it keeps
0.85 GB fewer activations; benchmarks/profile_ti_s4_3136_b8_fp32_base.txt), so it runs only where the hidden activation
is large (``RECOMPUTE_MIN_HIDDEN_ELEMENTS``); smaller MLPs (the latents', short inputs) keep GELU's output instead.

With the memory mode ``low`` (``set_mlp_memory``, the ``mlp_memory`` context manager or ``$BIXT_MLP_MEMORY``; the
default is ``fast``), ``norm_then_mlp`` goes one step further for the pre-norm branch ``mlp(norm(x))`` wherever the
hidden activation is large: ``NormMlpFromInput`` keeps only x, which the LayerNorm keeps anyway, and runs LayerNorm,
fc1 and GELU again in the backward pass. That drops the hidden activation and the LayerNorm's output from what a
layer keeps, for one more fc1 matmul and LayerNorm per layer. The mode also covers the attention branches' pre-norm
input projections (`bixt.layers.norm_linear`). For BiXT-Ti/4 at 3,136 tokens, batch 8, fp32 (BENCHMARKS.md §6.3):
peak memory 0.48-0.51x of the authors' code's instead of 0.66-0.67x, at a speed-up over it of 1.11x instead of 1.40x;
at 784 tokens the MLP part alone: -20% memory for 3-14% more time. A choice, off by default: it trades the speed the
default is tuned for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from bixt.layers.switch import Switch

# Hidden activations of at least this many elements (16 MiB in fp32; BiXT-Ti's token MLPs at batch 8 from 683 tokens
# on) are recomputed in the backward pass; below it the memory saved is small and the extra GELU pass is not worth it.
RECOMPUTE_MIN_HIDDEN_ELEMENTS = 2**22

MlpMemory = Literal["fast", "low"]
MLP_MEMORY_MODES: tuple[str, ...] = get_args(MlpMemory)
_MEMORY = Switch("MLP memory mode", "BIXT_MLP_MEMORY", MLP_MEMORY_MODES, "fast")


def get_mlp_memory() -> str:
    """The MLP memory mode in force: the one set in Python, else ``$BIXT_MLP_MEMORY``, else ``fast``."""
    return _MEMORY.get()


def set_mlp_memory(mode: MlpMemory | None) -> None:
    """``low``: large pre-norm MLP branches keep only their input (module docstring); ``None``: back to the default."""
    _MEMORY.set(mode)


def mlp_memory(mode: MlpMemory) -> AbstractContextManager[None]:
    """Use `mode` inside the ``with`` block, then restore what was in force before."""
    return _MEMORY.using(mode)


def keeps_only_input(elements: int) -> bool:
    """Whether a pre-norm branch whose largest kept activation has `elements` elements keeps only its input: in the
    memory mode ``low``, from ``RECOMPUTE_MIN_HIDDEN_ELEMENTS`` on."""
    return get_mlp_memory() == "low" and elements >= RECOMPUTE_MIN_HIDDEN_ELEMENTS


# -- what the input-only branches (NormMlpFromInput, bixt.layers.norm_linear) share to recompute in the backward pass


def autocast_state(x: torch.Tensor) -> tuple[str, bool, torch.dtype]:
    """The autocast state of x's device now, for the backward pass to recompute under (its values are then the
    forward's)."""
    device = x.device.type
    return device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)


@contextmanager
def recompute_under(state: tuple[str, bool, torch.dtype]) -> Iterator[None]:
    """Gradients on and the forward pass's autocast state, for ops run again inside a backward pass."""
    device, enabled, dtype = state
    with torch.enable_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
        yield


def detached_leaves(tensors, wanted) -> list[torch.Tensor | None]:
    """Fresh leaves of the saved tensors to recompute from, each asking for a gradient only where one is wanted."""
    return [None if t is None else t.detach().requires_grad_(want) for t, want in zip(tensors, wanted, strict=True)]


def leaf_grads(output: torch.Tensor, leaves, grad_output: torch.Tensor) -> list[torch.Tensor | None]:
    """The gradients of `output` (given `grad_output`) for each leaf, None where a leaf wants none."""
    inputs = [leaf for leaf in leaves if leaf is not None and leaf.requires_grad]
    grads = iter(torch.autograd.grad(output, inputs, grad_output) if inputs else ())
    return [next(grads) if leaf is not None and leaf.requires_grad else None for leaf in leaves]


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


class NormMlpFromInput(torch.autograd.Function):
    """y = gelu(layer_norm(x) @ w1^T + b1) @ w2^T + b2, saving only x and the weights for the backward pass.

    The backward pass runs LayerNorm, fc1 and GELU again under the autocast state of the forward pass (so the
    recomputed values are the forward's), gets fc2's gradients by hand from them, and the rest through autograd.
    """

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps, w1, b1, w2, b2):
        ctx.autocast = autocast_state(x)
        ctx.eps = eps
        ctx.b2_dtype = None if b2 is None else b2.dtype
        ctx.save_for_backward(x, norm_weight, norm_bias, w1, b1, w2)
        return F.linear(F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], norm_weight, norm_bias, eps), w1, b1)), w2, b2)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, norm_weight, norm_bias, w1, b1, w2 = ctx.saved_tensors
        needs = ctx.needs_input_grad
        leaves = detached_leaves(
            (x, norm_weight, norm_bias, w1, b1), (needs[0], needs[1], needs[2], needs[4], needs[5])
        )
        with recompute_under(ctx.autocast):
            normed = F.layer_norm(leaves[0], x.shape[-1:], leaves[1], leaves[2], ctx.eps)
            act = F.gelu(F.linear(normed, leaves[3], leaves[4]))
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_w2 = grad_b2 = None
        if needs[6]:
            grad_w2 = (flat_grad.T @ act.detach().reshape(-1, act.shape[-1]).to(grad_out.dtype)).to(w2.dtype)
        if ctx.b2_dtype is not None and needs[7]:
            grad_b2 = flat_grad.sum(0).to(ctx.b2_dtype)
        grad_act = (grad_out @ w2.to(grad_out.dtype)).to(act.dtype)
        grad_x, grad_nw, grad_nb, grad_w1, grad_b1 = leaf_grads(act, leaves, grad_act)
        return grad_x, grad_nw, grad_nb, None, grad_w1, grad_b1, grad_w2, grad_b2


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

    def may_recompute(self) -> bool:
        """Whether a backward pass may recompute the hidden layer: not with hidden dropout (its mask would be
        drawn again), nor while FX traces (a graph cannot branch on a traced size), nor without gradients."""
        hidden_dropout = self.training and self.drop1.p > 0
        return not hidden_dropout and not is_fx_symbolic_tracing() and torch.is_grad_enabled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.may_recompute() and h.numel() >= RECOMPUTE_MIN_HIDDEN_ELEMENTS:
            return self.drop2(GeluLinear.apply(h, self.fc2.weight, self.fc2.bias))
        return self.drop2(self.fc2(self.drop1(self.act(h))))


def norm_then_mlp(x: torch.Tensor, norm: nn.LayerNorm, mlp: Mlp) -> torch.Tensor:
    """``mlp(norm(x))``, the pre-norm MLP branch; in the memory mode ``low``, for a large hidden activation, keeping
    only x for the backward pass (``NormMlpFromInput``, module docstring). Same outputs and gradients either way."""
    # may_recompute first: under FX tracing x is a proxy, whose sizes cannot be compared
    if mlp.may_recompute() and keeps_only_input(x.numel() // x.shape[-1] * mlp.fc1.out_features):
        fc1, fc2 = mlp.fc1, mlp.fc2
        out = NormMlpFromInput.apply(x, norm.weight, norm.bias, norm.eps, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
        return mlp.drop2(out)
    return mlp(norm(x))
