"""The pre-norm input projection ``linear(layer_norm(x))`` of an attention branch, and its low-memory form.

A Linear keeps its input for the weight gradient, so ``linear(norm(x))`` keeps the LayerNorm's output beside x, which
the LayerNorm keeps itself: two token-wide tensors where one would do. In the memory mode ``low`` (`bixt.layers.mlp`)
``NormLinearFromInput`` keeps only x and runs the LayerNorm again in the backward pass, an elementwise pass that costs
little next to the projection's matmul. For BiXT-Ti/4 at 3,136 tokens and batch 8 that is one (b, n, 192) tensor,
19 MB in fp32, per cross-attention layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from bixt.layers.mlp import autocast_state, detached_leaves, keeps_only_input, leaf_grads, recompute_under


class NormLinearFromInput(torch.autograd.Function):
    """y = layer_norm(x) @ weight^T + bias, saving x and the weights (not layer_norm(x)) for the backward pass.

    The backward pass runs the LayerNorm again under the autocast state of the forward pass, so the recomputed values
    are the forward's; the projection's gradients are taken by hand, the LayerNorm's through autograd.
    """

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps, weight, bias):
        ctx.autocast = autocast_state(x)
        ctx.eps = eps
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(x, norm_weight, norm_bias, weight)
        return F.linear(F.layer_norm(x, x.shape[-1:], norm_weight, norm_bias, eps), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, norm_weight, norm_bias, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        leaves = detached_leaves((x, norm_weight, norm_bias), needs[:3])
        with recompute_under(ctx.autocast):
            normed = F.layer_norm(leaves[0], x.shape[-1:], leaves[1], leaves[2], ctx.eps)
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = grad_bias = None
        if needs[4]:
            flat_normed = normed.detach().reshape(-1, normed.shape[-1]).to(grad_out.dtype)
            grad_weight = (flat_grad.T @ flat_normed).to(weight.dtype)
        if ctx.bias_dtype is not None and needs[5]:
            grad_bias = flat_grad.sum(0).to(ctx.bias_dtype)
        grad_normed = (grad_out @ weight.to(grad_out.dtype)).to(normed.dtype)
        grad_x, grad_nw, grad_nb = leaf_grads(normed, leaves, grad_normed)
        return grad_x, grad_nw, grad_nb, None, grad_weight, grad_bias


def norm_then_linear(x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> torch.Tensor:
    """``linear(norm(x))``; in the memory mode ``low``, for a large x, keeping only x for the backward pass
    (``NormLinearFromInput``). Same outputs and gradients either way."""
    # the cheap checks first: under FX tracing x is a proxy, whose sizes cannot be compared
    if torch.is_grad_enabled() and not is_fx_symbolic_tracing() and keeps_only_input(x.numel()):
        return NormLinearFromInput.apply(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)
    return linear(norm(x))
