"""The three attention modules of BiXT: their projections and head split; the math lives in `attention_math.py`.

- `BiCrossAttention`: latents and tokens update each other through one shared similarity matrix. Four input projections
  (R and V for each side, fused as ``rv_*``) instead of the six of two sequential cross-attentions.
- `OneSidedCrossAttention`: latents gather from tokens only; used in the last layer of a classifier, where a token
  update would receive no gradient.
- `SelfAttention`: standard multi-head self-attention among the latents.

Fused projection rows are laid out ``[first | second] x [head 0 .. head h-1] x [d]`` (e.g. ``rv`` = ``[R | V]``), the
layout of the official checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from bixt.layers.attention_math import AttentionMaps, attend, bidirectional_attend
from bixt.layers.norm_linear import norm_then_linear


def _check_heads(dim: int, num_heads: int) -> None:
    if num_heads < 1 or dim % num_heads != 0:
        raise ValueError(f"the attention width ({dim}) must be divisible by the number of heads, got {num_heads} heads")


# Plain tensor ops rather than einops, which torch.fx cannot trace.
def _split(x: torch.Tensor, parts: int, num_heads: int) -> torch.Tensor:
    # (b, l, parts*h*d) -> (parts, b, h, l, d). Splitting into chunks of the last dim instead was tried: with it, a
    # BiXT-Ti/4 training step at 3,136 tokens measured 7% slower in fp32 (BENCHMARKS.md §6.5), so this view stays.
    return x.unflatten(-1, (parts, num_heads, -1)).permute(2, 0, 3, 1, 4)


def _merge(x: torch.Tensor) -> torch.Tensor:
    # (b, h, l, d) -> (b, l, h*d)
    return x.transpose(1, 2).flatten(2)


def _project(x: torch.Tensor, linear: nn.Linear, norm: nn.LayerNorm | None) -> torch.Tensor:
    # x is normalised already, or the caller hands over the norm so that the memory mode can drop its output
    return linear(x) if norm is None else norm_then_linear(x, norm, linear)


class BiCrossAttention(nn.Module):
    """Bi-directional cross-attention.

    latents: (b, m, dim_latent) normalised; tokens: (b, n, dim_token) normalised, or raw with their ``token_norm``;
    token_mask: (b, n) bool or None. Returns the latent update (b, m, dim_latent), the token update (b, n, dim_token)
    and the maps if asked.
    """

    def __init__(
        self,
        dim_latent: int,
        dim_token: int,
        *,
        num_heads: int,
        dim_attn: int | None = None,
        bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        dim_attn = dim_attn or dim_latent
        _check_heads(dim_attn, num_heads)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.rv_latents = nn.Linear(dim_latent, 2 * dim_attn, bias=bias)
        self.rv_tokens = nn.Linear(dim_token, 2 * dim_attn, bias=bias)
        self.proj_latents = nn.Linear(dim_attn, dim_latent)
        self.proj_tokens = nn.Linear(dim_attn, dim_token)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        latents: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        return_maps: bool = False,
        token_norm: nn.LayerNorm | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, AttentionMaps | None]:
        r_lat, v_lat = _split(self.rv_latents(latents), 2, self.num_heads)  # (b, h, m, d) each
        r_tok, v_tok = _split(_project(tokens, self.rv_tokens, token_norm), 2, self.num_heads)  # (b, h, n, d) each
        lat, tok, maps = bidirectional_attend(
            r_lat,
            v_lat,
            r_tok,
            v_tok,
            token_mask=token_mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            return_maps=return_maps,
        )
        lat = self.proj_drop(self.proj_latents(_merge(lat)))
        tok = self.proj_drop(self.proj_tokens(_merge(tok)))
        return lat, tok, maps


class OneSidedCrossAttention(nn.Module):
    """Latents attend to tokens; tokens are not updated.

    latents: (b, m, dim_latent); tokens: (b, n, dim_token), normalised, or raw with their ``token_norm``;
    token_mask: (b, n) bool or None. Returns the latent update (b, m, dim_latent) and the maps if asked.
    """

    def __init__(
        self,
        dim_latent: int,
        dim_token: int,
        *,
        num_heads: int,
        dim_attn: int | None = None,
        bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        dim_attn = dim_attn or dim_latent
        _check_heads(dim_attn, num_heads)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.r_latents = nn.Linear(dim_latent, dim_attn, bias=bias)
        self.rv_tokens = nn.Linear(dim_token, 2 * dim_attn, bias=bias)
        self.proj_latents = nn.Linear(dim_attn, dim_latent)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        latents: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        return_maps: bool = False,
        token_norm: nn.LayerNorm | None = None,
    ) -> tuple[torch.Tensor, AttentionMaps | None]:
        (q,) = _split(self.r_latents(latents), 1, self.num_heads)
        k, v = _split(_project(tokens, self.rv_tokens, token_norm), 2, self.num_heads)
        out, attn = attend(
            q,
            k,
            v,
            key_mask=token_mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            return_maps=return_maps,
        )
        maps = AttentionMaps(attn) if attn is not None else None
        return self.proj_drop(self.proj_latents(_merge(out))), maps


class SelfAttention(nn.Module):
    """Multi-head self-attention. x: (b, l, dim), normalised or raw with its ``norm`` -> (b, l, dim); key_mask: (b, l)
    bool or None."""

    def __init__(
        self, dim: int, *, num_heads: int, bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        _check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, norm: nn.LayerNorm | None = None
    ) -> torch.Tensor:
        q, k, v = _split(_project(x, self.qkv, norm), 3, self.num_heads)
        out, _ = attend(q, k, v, key_mask=key_mask, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(_merge(out)))
