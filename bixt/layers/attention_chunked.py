"""Memory-efficient bi-directional attention: tokens in chunks, nothing of size (b, h, m, n) kept for backward.

Shapes follow the legend of `attention_math.py` (b batch, h heads, m latents, n tokens, d channels per head, c chunk).

Per chunk of c tokens the similarity tile S = R_lat R_tok[chunk]^T / sqrt(d), (b, h, m, c), is computed once and feeds
both directions:

- token direction (softmax over the m latents): local to the chunk, since every token's softmax runs over all latents,
  which the tile holds completely; the backward pass recomputes it exactly from the tile.
- latent direction (softmax over the n tokens): an online softmax; a running maximum and sum per latent are rescaled
  as chunks arrive, so the result equals a softmax over all tokens. Its log-normaliser, (b, h, m), is kept.

The backward pass, shared with the Triton path, is `attention_tiles.tiled_backward`.
"""

from __future__ import annotations

import torch

from bixt.layers.attention_tiles import (
    chunk_size_for,
    masked_tile,
    save_for_tiled_backward,
    stats_dtype,
    tiled_backward,
    token_chunk,
    tokens_layout,
)


def _finite(x: torch.Tensor) -> torch.Tensor:
    # A row that has seen only padding has max / log-normaliser -inf; use 0 so that exp(-inf - 0) = 0, not NaN.
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


class ChunkedCrossAttention(torch.autograd.Function):
    """Both directions (or only the latent one) of cross-attention between m queries and n chunked tokens.

    Eager PyTorch runs one pass over the tile per elementwise op, so the code keeps them few: the scale is folded into
    R_lat, the token direction uses the fused softmax kernel (its softmax is local, so the backward recomputes it
    exactly), and the backward updates tiles in place.
    """

    @staticmethod
    def forward(ctx, r_lat, v_lat, r_tok, v_tok, token_mask, chunk, bidirectional):
        v_lat = None if v_lat is None else v_lat.contiguous()
        b, h, m, d = r_lat.shape
        n = r_tok.shape[2]
        acc_dtype = stats_dtype(r_lat.dtype)
        r_scaled = (r_lat * d**-0.5).contiguous()  # similarity = r_scaled @ r_tok^T
        key_mask = None if token_mask is None else token_mask[:, None, None, :]  # (b, 1, 1, n)

        row_max = torch.full((b, h, m, 1), float("-inf"), dtype=acc_dtype, device=r_lat.device)
        row_sum = torch.zeros(b, h, m, 1, dtype=acc_dtype, device=r_lat.device)
        acc_lat = torch.zeros(b, h, m, v_tok.shape[-1], dtype=acc_dtype, device=r_lat.device)
        if bidirectional:
            out_tok = tokens_layout(b, h, n, v_lat.shape[-1], r_tok, r_tok.dtype)

        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            sim = (r_scaled @ token_chunk(r_tok, start, stop).transpose(-2, -1)).to(acc_dtype)  # (b, h, m, c)
            if bidirectional:
                p_tok = sim.softmax(dim=-2).to(v_lat.dtype)  # over the latents: complete within the tile
                out_tok[:, :, start:stop] = p_tok.transpose(-2, -1) @ v_lat  # (b, h, c, d)
            sim = masked_tile(sim, None if key_mask is None else key_mask[..., start:stop])
            new_max = torch.maximum(row_max, sim.amax(dim=-1, keepdim=True))
            safe_max = _finite(new_max)
            rescale = torch.exp(_finite(row_max) - safe_max)
            p_lat = sim.sub_(safe_max).exp_()  # (b, h, m, c), unnormalised
            row_sum = row_sum * rescale + p_lat.sum(dim=-1, keepdim=True)
            acc_lat = acc_lat * rescale + p_lat.to(v_tok.dtype) @ token_chunk(v_tok, start, stop)
            row_max = new_max

        out_lat = (acc_lat / row_sum).to(v_tok.dtype)  # every sample has a real token: row_sum > 0
        lse_lat = _finite(row_max) + torch.log(row_sum)  # (b, h, m, 1), the latents' log-normaliser
        return save_for_tiled_backward(
            ctx,
            chunk,
            bidirectional,
            r_scaled,
            v_lat,
            r_tok,
            v_tok,
            token_mask,
            out_lat,
            lse_lat,
            out_tok if bidirectional else None,
        )

    backward = staticmethod(tiled_backward)


def _check(r_lat: torch.Tensor, r_tok: torch.Tensor, token_mask: torch.Tensor | None, chunk_size: int | None) -> None:
    if r_lat.ndim != 4 or r_tok.ndim != 4 or r_lat.shape[-1] != r_tok.shape[-1]:
        raise ValueError(
            f"expected queries (b, h, m, d) and tokens (b, h, n, d), got {tuple(r_lat.shape)}, {tuple(r_tok.shape)}"
        )
    if token_mask is not None and (
        token_mask.dtype != torch.bool or token_mask.shape != (r_tok.shape[0], r_tok.shape[2])
    ):
        raise ValueError(
            f"token_mask must be a bool tensor of shape {(r_tok.shape[0], r_tok.shape[2])}, "
            f"got {token_mask.dtype} {tuple(token_mask.shape)}"
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None (automatic), got {chunk_size!r}")


def _broadcast_batch(*tensors: torch.Tensor) -> list[torch.Tensor]:
    # Latents may arrive with batch 1 (shared over the batch); expanding here lets autograd sum their gradients.
    batch = max(t.shape[0] for t in tensors)
    return [t.expand(batch, *t.shape[1:]) for t in tensors]


def chunked_bidirectional_attend(
    r_latents: torch.Tensor,
    v_latents: torch.Tensor,
    r_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    *,
    token_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions of BiXT cross-attention, tokens processed in chunks (no attention dropout).

    r_latents, v_latents: (b, h, m, d); r_tokens, v_tokens: (b, h, n, d); token_mask: (b, n) bool, True = real token,
    every sample with at least one. chunk_size: tokens per chunk, None = sized to a cache-friendly tile.
    Returns the latent update (b, h, m, d) and the token update (b, h, n, d); padded tokens' updates are left to the
    caller to zero (their softmax over the latents is well defined).
    """
    _check(r_latents, r_tokens, token_mask, chunk_size)
    r_latents, v_latents, r_tokens, v_tokens = _broadcast_batch(r_latents, v_latents, r_tokens, v_tokens)
    b, h, m, _ = r_latents.shape
    chunk = chunk_size or chunk_size_for(b * h, m, r_tokens.shape[2])
    return ChunkedCrossAttention.apply(r_latents, v_latents, r_tokens, v_tokens, token_mask, chunk, True)


def chunked_attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Softmax attention over keys processed in chunks (no dropout).

    q: (b, h, i, d); k, v: (b, h, j, d) -> (b, h, i, d).
    key_mask: (b, j) bool, True for keys that may be attended to, at least one per sample.
    """
    _check(q, k, key_mask, chunk_size)
    q, k, v = _broadcast_batch(q, k, v)
    b, h, i, _ = q.shape
    chunk = chunk_size or chunk_size_for(b * h, i, k.shape[2])
    return ChunkedCrossAttention.apply(q, None, k, v, key_mask, chunk, False)
