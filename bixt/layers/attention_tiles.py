"""What the chunked and Triton attention paths share: tile sizing, the statistics dtype, and the backward pass.

Shapes follow the legend of `attention_math.py` (b batch, h heads, m latents, n tokens, d channels per head, c chunk).

Both paths' forwards save the same tensors (`save_for_tiled_backward`): R_lat pre-scaled by 1/sqrt(d), the other
inputs, the outputs and the latents' log-normaliser. Their backward (`tiled_backward`) recomputes each similarity tile
from R_lat and R_tok instead of reading stored probabilities, so the memory beyond the inputs and outputs is
O(b h (m + n)) plus one tile.

Outputs and gradients for the tokens are allocated as (b, n, h, d) and returned as (b, h, n, d) views
(`tokens_layout`): merging the heads back to (b, n, h*d), the caller's next step, is then free.
"""

from __future__ import annotations

import torch

# Elements of one (b, h, m, c) tile: big enough that matmuls dominate the per-chunk Python overhead, small enough to
# stay in the last-level cache of a CPU (2**20 fp32 elements = 4 MiB).
DEFAULT_TILE_ELEMENTS = 2**20
MIN_CHUNK = 64


def chunk_size_for(
    batch_heads: int, num_queries: int, num_tokens: int, tile_elements: int = DEFAULT_TILE_ELEMENTS
) -> int:
    """Tokens per chunk so that one (batch_heads, num_queries, chunk) tile has about `tile_elements` elements."""
    return max(1, min(num_tokens, max(MIN_CHUNK, tile_elements // max(1, batch_heads * num_queries))))


def stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """Softmax statistics and accumulators: fp32 when the inputs are half precision, else their own dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def tokens_layout(b: int, h: int, n: int, d: int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An empty (b, h, n, d) view of (b, n, h, d) storage: see the module docstring."""
    return torch.empty(b, n, h, d, dtype=dtype, device=like.device).transpose(1, 2)


def masked_tile(sim: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`sim` with padded tokens at -inf for the latents' softmax over tokens; mask: (b, 1, 1, c), True = real."""
    return sim if mask is None else sim.masked_fill(~mask, float("-inf"))


def token_chunk(tokens: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Tokens start:stop of (b, h, n, d) as a contiguous (b, h, c, d) copy.

    Head-split projections arrive as strided views of (b, n, h*d); a contiguous copy of the chunk makes a plain
    batched-matmul operand (b and h collapse into one batch stride; CPU bmm copies per matrix otherwise). Copying per
    chunk, not the whole input, keeps one copy of the tokens' projections alive, not two.
    """
    return tokens[:, :, start:stop].contiguous()


def save_for_tiled_backward(
    ctx,
    chunk: int,
    bidirectional: bool,
    r_scaled: torch.Tensor,
    v_lat: torch.Tensor | None,
    r_tok: torch.Tensor,
    v_tok: torch.Tensor,
    token_mask: torch.Tensor | None,
    out_lat: torch.Tensor,
    lse_lat: torch.Tensor,
    out_tok: torch.Tensor | None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Keep what `tiled_backward` needs on an autograd context; returns the forward's outputs. r_scaled: R_lat times
    1/sqrt(d); lse_lat: (b, h, m, 1); chunk: tokens per tile in the backward."""
    ctx.chunk, ctx.bidirectional = chunk, bidirectional
    if bidirectional:
        ctx.save_for_backward(r_scaled, v_lat, r_tok, v_tok, token_mask, out_lat, lse_lat, out_tok)
        return out_lat, out_tok
    ctx.save_for_backward(r_scaled, v_lat, r_tok, v_tok, token_mask, out_lat, lse_lat)
    return out_lat


def tiled_backward(ctx, d_out_lat, d_out_tok=None):
    """The backward pass of both paths' autograd functions, from what `save_for_tiled_backward` kept: each
    similarity tile recomputed from R_lat and R_tok; the latents' softmax from its log-normaliser, the tokens' (local
    to the tile) exactly."""
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
    d_r_tok = tokens_layout(b, h, n, d, r_tok, r_tok.dtype)
    d_v_tok = tokens_layout(b, h, n, v_tok.shape[-1], v_tok, v_tok.dtype)
    if bidirectional:
        (out_tok,) = tok_saved
        delta_tok = (d_out_tok.to(acc_dtype) * out_tok.to(acc_dtype)).sum(dim=-1)[:, :, None, :]  # (b, h, 1, n)
        v_lat_t = v_lat.to(acc_dtype)
    r_lat_t = r_scaled.to(acc_dtype)

    for start in range(0, n, ctx.chunk):
        stop = min(start + ctx.chunk, n)
        r_chunk = token_chunk(r_tok, start, stop).to(acc_dtype)
        sim = r_lat_t @ r_chunk.transpose(-2, -1)  # (b, h, m, c)
        if bidirectional:
            # token direction: P = softmax over latents, recomputed exactly from the tile
            p_tok = sim.softmax(dim=-2)
            d_out_chunk = d_out_tok[:, :, start:stop].to(acc_dtype)  # (b, h, c, d)
            d_v_lat += p_tok @ d_out_chunk
            d_sim_tok = (v_lat_t @ d_out_chunk.transpose(-2, -1)).sub_(delta_tok[..., start:stop]).mul_(p_tok)
        # latent direction: P = softmax over all tokens, from its log-normaliser
        p_lat = masked_tile(sim, None if key_mask is None else key_mask[..., start:stop]).sub_(lse_lat).exp_()
        d_v_tok[:, :, start:stop] = p_lat.transpose(-2, -1) @ d_out_lat
        v_chunk = token_chunk(v_tok, start, stop).to(acc_dtype)
        d_sim = (d_out_lat @ v_chunk.transpose(-2, -1)).sub_(delta_lat).mul_(p_lat)
        if bidirectional:
            d_sim += d_sim_tok
        d_r_lat += d_sim @ r_chunk
        d_r_tok[:, :, start:stop] = d_sim.transpose(-2, -1) @ r_lat_t  # r_scaled carries the scale

    d_r_lat = (d_r_lat * scale).to(r_scaled.dtype)
    d_v_lat = None if d_v_lat is None else d_v_lat.to(v_lat.dtype)
    return d_r_lat, d_v_lat, d_r_tok, d_v_tok, None, None, None
