"""Triton forward kernel for bi-directional attention: each similarity tile is computed once and feeds both directions.

Shapes follow the legend of `attention_math.py` (b batch, h heads, m latents, n tokens, d channels per head).

One program per (batch, head) keeps R_lat and V_lat (m x d, small) on chip and walks over blocks of tokens:

- S = R_lat R_tok[block]^T / sqrt(d)                         (m, block), never written to memory
- token direction: softmax of S over the m latents (complete within the tile) times V_lat -> token outputs of the block
- latent direction: an online softmax over the token blocks, accumulated in (m, d)

The backward pass is the one shared with the chunked path (`attention_tiles.tiled_backward`), which needs exactly what
this forward saves: R_lat pre-scaled, the inputs, both outputs and the latents' log-normaliser.

Runs on CUDA, or on CPU under Triton's interpreter (``TRITON_INTERPRET=1``, slow: for correctness checks only).
"""

from __future__ import annotations

import functools
import os

import torch

from bixt.layers.attention_tiles import chunk_size_for, save_for_tiled_backward, stats_dtype, tiled_backward

BLOCK_TOKENS = 64


def triton_available(device: torch.device) -> bool:
    """True if the kernel can run for tensors on `device`: triton imports, and CUDA or the interpreter."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def _kernel(interpret: bool):
    # Built on first use, not at import: whether Triton interprets is decided when a function is jitted, and
    # `interpret` (the environment at call time) keys the cache so a later change of TRITON_INTERPRET is honoured.
    import triton
    import triton.language as tl

    @triton.jit
    def bidirectional_forward(
        r_lat, v_lat, r_tok, v_tok, mask, out_lat, lse_lat, out_tok,
        heads, m, n, d, scale,
        s_rl_b, s_rl_h, s_rl_m, s_vl_b, s_vl_h, s_vl_m,
        s_rt_b, s_rt_h, s_rt_n, s_vt_b, s_vt_h, s_vt_n,
        s_mask_b, s_ol_b, s_ol_h, s_ol_m, s_lse_b, s_lse_h, s_ot_b, s_ot_h, s_ot_n,
        HAS_MASK: tl.constexpr, BIDIRECTIONAL: tl.constexpr, ACC: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        b = pid // heads
        h = pid % heads
        rows = tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_D)
        row_ok = rows < m
        lat_ok = row_ok[:, None] & (cols[None, :] < d)
        q = tl.load(r_lat + b * s_rl_b + h * s_rl_h + rows[:, None] * s_rl_m + cols[None, :], mask=lat_ok, other=0.0)
        q = q * scale
        if BIDIRECTIONAL:
            vl = tl.load(
                v_lat + b * s_vl_b + h * s_vl_h + rows[:, None] * s_vl_m + cols[None, :], mask=lat_ok, other=0.0
            )
        run_max = tl.full((BLOCK_M,), float("-inf"), ACC)
        run_sum = tl.zeros((BLOCK_M,), ACC)
        acc = tl.zeros((BLOCK_M, BLOCK_D), ACC)
        for start in range(0, n, BLOCK_N):
            toks = start + tl.arange(0, BLOCK_N)
            tok_ok = toks < n
            blk_ok = tok_ok[:, None] & (cols[None, :] < d)
            k = tl.load(
                r_tok + b * s_rt_b + h * s_rt_h + toks[:, None] * s_rt_n + cols[None, :], mask=blk_ok, other=0.0
            )
            v = tl.load(
                v_tok + b * s_vt_b + h * s_vt_h + toks[:, None] * s_vt_n + cols[None, :], mask=blk_ok, other=0.0
            )
            sim = tl.dot(q, tl.trans(k))  # (BLOCK_M, BLOCK_N), shared by both directions
            if BIDIRECTIONAL:
                # tokens: softmax over the real latent rows of the tile
                s_tok = tl.where(row_ok[:, None], sim, float("-inf"))
                p_tok = tl.exp(s_tok - tl.max(s_tok, axis=0)[None, :])
                p_tok = p_tok / tl.sum(p_tok, axis=0)[None, :]
                o_tok = tl.dot(tl.trans(p_tok), vl)  # (BLOCK_N, BLOCK_D)
                o_ptr = out_tok + b * s_ot_b + h * s_ot_h + toks[:, None] * s_ot_n + cols[None, :]
                tl.store(o_ptr, o_tok, mask=blk_ok)
            # latents: online softmax over the real (and unmasked) tokens
            keep = tok_ok
            if HAS_MASK:
                keep = keep & (tl.load(mask + b * s_mask_b + toks, mask=tok_ok, other=0) != 0)
            s_lat = tl.where(keep[None, :], sim, float("-inf"))
            new_max = tl.maximum(run_max, tl.max(s_lat, axis=1))
            safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
            rescale = tl.exp(tl.where(run_max == float("-inf"), 0.0, run_max) - safe_max)
            p_lat = tl.exp(s_lat - safe_max[:, None])
            run_sum = run_sum * rescale + tl.sum(p_lat, axis=1)
            acc = acc * rescale[:, None] + tl.dot(p_lat, v)
            run_max = new_max
        out = acc / run_sum[:, None]
        tl.store(out_lat + b * s_ol_b + h * s_ol_h + rows[:, None] * s_ol_m + cols[None, :], out, mask=lat_ok)
        lse = tl.where(run_max == float("-inf"), 0.0, run_max) + tl.log(run_sum)
        tl.store(lse_lat + b * s_lse_b + h * s_lse_h + rows, lse, mask=row_ok)

    return bidirectional_forward, {torch.float32: tl.float32, torch.float64: tl.float64}


def _next_pow2(x: int, minimum: int = 16) -> int:
    # tl.arange needs powers of two; tl.dot needs at least 16 along each dimension
    return max(minimum, 1 << (x - 1).bit_length())


class _TritonCrossAttention(torch.autograd.Function):
    """Triton forward; backward shared with the chunked path (`attention_tiles.tiled_backward`)."""

    @staticmethod
    def forward(ctx, r_lat, v_lat, r_tok, v_tok, token_mask, bidirectional):
        b, h, m, d = r_lat.shape
        n = r_tok.shape[2]
        scale = d**-0.5
        acc_dtype = stats_dtype(r_lat.dtype)  # fp32 statistics for half inputs, fp64 stays fp64
        out_lat = torch.empty(b, h, m, v_tok.shape[-1], dtype=acc_dtype, device=r_lat.device)
        lse_lat = torch.empty(b, h, m, dtype=acc_dtype, device=r_lat.device)
        out_tok = torch.empty(b, n, h, d, dtype=acc_dtype, device=r_lat.device).transpose(1, 2)
        v_lat_in = v_lat if bidirectional else r_lat  # unused by the kernel when one-sided
        mask = token_mask.to(torch.int8) if token_mask is not None else out_lat  # a dummy pointer without a mask
        kernel, tl_dtypes = _kernel(os.environ.get("TRITON_INTERPRET") == "1")
        kernel[(b * h,)](
            r_lat, v_lat_in, r_tok, v_tok, mask, out_lat, lse_lat, out_tok,
            h, m, n, d, scale,
            *r_lat.stride()[:3], *v_lat_in.stride()[:3], *r_tok.stride()[:3], *v_tok.stride()[:3],
            mask.stride(0), *out_lat.stride()[:3], *lse_lat.stride()[:2], *out_tok.stride()[:3],
            HAS_MASK=token_mask is not None, BIDIRECTIONAL=bidirectional, ACC=tl_dtypes[acc_dtype],
            BLOCK_M=_next_pow2(m), BLOCK_N=BLOCK_TOKENS, BLOCK_D=_next_pow2(d),
        )  # fmt: skip
        out_lat = out_lat.to(v_tok.dtype)
        out_tok = out_tok.to(v_tok.dtype)
        r_scaled = (r_lat * scale).contiguous()
        lse_lat = lse_lat[..., None]
        return save_for_tiled_backward(
            ctx,
            chunk_size_for(b * h, m, n),
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


def _prepare(*tensors: torch.Tensor) -> list[torch.Tensor]:
    # one batch for all (latents may be shared with batch 1); the kernel reads rows with unit channel stride
    batch = max(t.shape[0] for t in tensors)
    if not triton_available(tensors[0].device):
        raise RuntimeError("the triton attention path needs triton and a CUDA device (or TRITON_INTERPRET=1 on CPU)")
    return [t.expand(batch, *t.shape[1:]).contiguous() for t in tensors]


def triton_bidirectional_attend(
    r_latents: torch.Tensor,
    v_latents: torch.Tensor,
    r_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    *,
    token_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions of BiXT cross-attention, Triton forward. Shapes as `chunked_bidirectional_attend`."""
    r_latents, v_latents, r_tokens, v_tokens = _prepare(r_latents, v_latents, r_tokens, v_tokens)
    return _TritonCrossAttention.apply(r_latents, v_latents, r_tokens, v_tokens, token_mask, True)


def triton_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax attention over the keys, Triton forward. q: (b, h, i, d); k, v: (b, h, j, d) -> (b, h, i, d)."""
    q, k, v = _prepare(q, k, v)
    return _TritonCrossAttention.apply(q, None, k, v, key_mask, False)
