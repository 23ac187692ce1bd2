"""Memory-efficient bi-directional attention: tokens in chunks, nothing of size (b, h, m, n) kept for backward.

Shapes follow the legend of `attend.py` (b batch, h heads, m latents, n tokens, d channels per head, c chunk).

Per chunk of c tokens the similarity tile S = R_lat R_tok[chunk]^T / sqrt(d), (b, h, m, c), is computed once and feeds
both directions:

- token direction (softmax over the m latents): local to the chunk, since every token's softmax runs over all latents,
  which the tile holds completely. Its log-normaliser, (b, h, n), is kept for the backward pass.
- latent direction (softmax over the n tokens): an online softmax; a running maximum and sum per latent are rescaled
  as chunks arrive, so the result equals a softmax over all tokens. Its log-normaliser, (b, h, m), is kept.

The backward pass recomputes each tile from R_lat and R_tok and the two log-normalisers instead of reading stored
probabilities, so the memory beyond the inputs and outputs is O(b h (m + n)) plus one tile.

Outputs and gradients for the tokens are allocated as (b, n, h, d) and returned as (b, h, n, d) views: merging the
heads back to (b, n, h*d), the caller's next step, is then free.
"""

from __future__ import annotations

import torch

# Elements of one (b, h, m, c) tile: big enough that matmuls dominate the per-chunk Python overhead, small enough to
# stay in the last-level cache of a CPU (2**19 fp32 elements = 2 MiB).
DEFAULT_TILE_ELEMENTS = 2**20
MIN_CHUNK = 64


def chunk_size_for(
    batch_heads: int, num_queries: int, num_tokens: int, tile_elements: int = DEFAULT_TILE_ELEMENTS
) -> int:
    """Tokens per chunk so that one (batch_heads, num_queries, chunk) tile has about `tile_elements` elements."""
    return max(1, min(num_tokens, max(MIN_CHUNK, tile_elements // max(1, batch_heads * num_queries))))


def _stats_dtype(dtype: torch.dtype) -> torch.dtype:
    # Softmax statistics and accumulators in fp32 when the inputs are half precision.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _tokens_layout(b: int, h: int, n: int, d: int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # (b, n, h, d) storage seen as (b, h, n, d): see the module docstring.
    return torch.empty(b, n, h, d, dtype=dtype, device=like.device).transpose(1, 2)


def _masked(sim: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # mask: (b, 1, 1, c) True = real token; padded tokens get -inf in the latents' softmax over tokens.
    return sim if mask is None else sim.masked_fill(~mask, float("-inf"))


def _finite(x: torch.Tensor) -> torch.Tensor:
    # A row that has seen only padding has max / log-normaliser -inf; use 0 so that exp(-inf - 0) = 0, not NaN.
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _chunk(tokens: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    # Head-split projections arrive as strided views of (b, n, h*d); a contiguous (b, h, c, d) copy of the chunk makes
    # a plain batched-matmul operand (b and h collapse into one batch stride; CPU bmm copies per matrix otherwise).
    # Copying per chunk, not the whole input, keeps one copy of the tokens' projections alive, not two.
    return tokens[:, :, start:stop].contiguous()


class _ChunkedCrossAttention(torch.autograd.Function):
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
        acc_dtype = _stats_dtype(r_lat.dtype)
        r_scaled = (r_lat * d**-0.5).contiguous()  # similarity = r_scaled @ r_tok^T
        key_mask = None if token_mask is None else token_mask[:, None, None, :]  # (b, 1, 1, n)

        row_max = torch.full((b, h, m, 1), float("-inf"), dtype=acc_dtype, device=r_lat.device)
        row_sum = torch.zeros(b, h, m, 1, dtype=acc_dtype, device=r_lat.device)
        acc_lat = torch.zeros(b, h, m, v_tok.shape[-1], dtype=acc_dtype, device=r_lat.device)
        if bidirectional:
            out_tok = _tokens_layout(b, h, n, v_lat.shape[-1], r_tok, r_tok.dtype)

        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            sim = (r_scaled @ _chunk(r_tok, start, stop).transpose(-2, -1)).to(acc_dtype)  # (b, h, m, c)
            if bidirectional:
                p_tok = sim.softmax(dim=-2).to(v_lat.dtype)  # over the latents: complete within the tile
                out_tok[:, :, start:stop] = p_tok.transpose(-2, -1) @ v_lat  # (b, h, c, d)
            sim = _masked(sim, None if key_mask is None else key_mask[..., start:stop])
            new_max = torch.maximum(row_max, sim.amax(dim=-1, keepdim=True))
            safe_max = _finite(new_max)
            rescale = torch.exp(_finite(row_max) - safe_max)
            p_lat = sim.sub_(safe_max).exp_()  # (b, h, m, c), unnormalised
            row_sum = row_sum * rescale + p_lat.sum(dim=-1, keepdim=True)
            acc_lat = acc_lat * rescale + p_lat.to(v_tok.dtype) @ _chunk(v_tok, start, stop)
            row_max = new_max

        out_lat = (acc_lat / row_sum).to(v_tok.dtype)  # every sample has a real token: row_sum > 0
        lse_lat = _finite(row_max) + torch.log(row_sum)  # (b, h, m, 1), the latents' log-normaliser
        ctx.chunk, ctx.bidirectional = chunk, bidirectional
        if bidirectional:
            ctx.save_for_backward(r_scaled, v_lat, r_tok, v_tok, token_mask, out_lat, lse_lat, out_tok)
            return out_lat, out_tok
        ctx.save_for_backward(r_scaled, v_lat, r_tok, v_tok, token_mask, out_lat, lse_lat)
        return out_lat

    @staticmethod
    def backward(ctx, d_out_lat, d_out_tok=None):
        r_scaled, v_lat, r_tok, v_tok, token_mask, out_lat, lse_lat, *tok_saved = ctx.saved_tensors
        bidirectional = ctx.bidirectional and d_out_tok is not None
        b, h, m, d = r_scaled.shape
        n = r_tok.shape[2]
        scale = d**-0.5
        acc_dtype = lse_lat.dtype
        key_mask = None if token_mask is None else token_mask[:, None, None, :]

        d_out_lat = d_out_lat.to(acc_dtype)
        # delta = rowsum(dO * O): the softmax backward's correction term, one value per query row.
        delta_lat = (d_out_lat * out_lat.to(acc_dtype)).sum(dim=-1, keepdim=True)  # (b, h, m, 1)
        d_r_lat = torch.zeros(b, h, m, d, dtype=acc_dtype, device=r_scaled.device)  # of r_scaled, rescaled at the end
        d_v_lat = torch.zeros_like(d_r_lat) if bidirectional else None
        d_r_tok = _tokens_layout(b, h, n, d, r_tok, r_tok.dtype)
        d_v_tok = _tokens_layout(b, h, n, v_tok.shape[-1], v_tok, v_tok.dtype)
        if bidirectional:
            (out_tok,) = tok_saved
            delta_tok = (d_out_tok.to(acc_dtype) * out_tok.to(acc_dtype)).sum(dim=-1)[:, :, None, :]  # (b, h, 1, n)
            v_lat_t = v_lat.to(acc_dtype)
        r_lat_t = r_scaled.to(acc_dtype)

        for start in range(0, n, ctx.chunk):
            stop = min(start + ctx.chunk, n)
            r_chunk = _chunk(r_tok, start, stop).to(acc_dtype)
            sim = r_lat_t @ r_chunk.transpose(-2, -1)  # (b, h, m, c)
            if bidirectional:
                # token direction: P = softmax over latents, recomputed exactly from the tile
                p_tok = sim.softmax(dim=-2)
                d_out_chunk = d_out_tok[:, :, start:stop].to(acc_dtype)  # (b, h, c, d)
                d_v_lat += p_tok @ d_out_chunk
                d_sim_tok = (v_lat_t @ d_out_chunk.transpose(-2, -1)).sub_(delta_tok[..., start:stop]).mul_(p_tok)
            # latent direction: P = softmax over all tokens, from its log-normaliser
            p_lat = _masked(sim, None if key_mask is None else key_mask[..., start:stop]).sub_(lse_lat).exp_()
            d_v_tok[:, :, start:stop] = p_lat.transpose(-2, -1) @ d_out_lat
            v_chunk = _chunk(v_tok, start, stop).to(acc_dtype)
            d_sim = (d_out_lat @ v_chunk.transpose(-2, -1)).sub_(delta_lat).mul_(p_lat)
            if bidirectional:
                d_sim += d_sim_tok
            d_r_lat += d_sim @ r_chunk
            d_r_tok[:, :, start:stop] = d_sim.transpose(-2, -1) @ r_lat_t  # r_scaled carries the scale

        d_r_lat = (d_r_lat * scale).to(r_scaled.dtype)
        d_v_lat = None if d_v_lat is None else d_v_lat.to(v_lat.dtype)
        return d_r_lat, d_v_lat, d_r_tok, d_v_tok, None, None, None


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
    return _ChunkedCrossAttention.apply(r_latents, v_latents, r_tokens, v_tokens, token_mask, chunk, True)


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
    return _ChunkedCrossAttention.apply(q, None, k, v, key_mask, chunk, False)
