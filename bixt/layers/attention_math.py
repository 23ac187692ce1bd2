"""The attention math of BiXT, kept apart from the projections that feed it (`attention.py`).

Legend for every shape in this package:
    b  batch            h  heads            d  channels per head
    m  latents          n  tokens           (b, h, m, n) is one similarity matrix per head

BiXT's bi-directional cross-attention computes one similarity matrix A = R_lat R_tok^T / sqrt(d) per head and uses it
twice: softmax over the tokens (each latent gathers from the tokens) and softmax over the latents (each token gathers
from the latents). `bidirectional_attention` below is exactly that. Four interchangeable paths compute
it; which one runs is the path policy of `attention_paths.py`:

- ``explicit``: `bidirectional_attention` itself; the reference, and the only path that can return attention maps.
- ``fused``: two calls of ``scaled_dot_product_attention``, one per direction; no (b, h, m, n) tensor is kept for the
  backward pass, at the price of computing A twice.
- ``chunked``: tokens in chunks, each similarity tile computed once and used by both directions (online softmax over
  the tokens), a backward pass that recomputes the tiles (`attention_chunked.py`); memory O(b h (m + n)) beyond
  inputs and outputs. No attention dropout.
- ``triton``: a Triton kernel computing each similarity tile once for both directions (`attention_triton.py`), with
  the chunked path's backward (`attention_tiles.py`); CUDA, or CPU under ``TRITON_INTERPRET=1`` for checks. No
  attention dropout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bixt.layers.attention_chunked import chunked_attend, chunked_bidirectional_attend
from bixt.layers.attention_paths import choose_path

# CPU softmax kernels handle a short softmax axis badly on AVX-512: over the last axis they vectorise along it, so an
# axis shorter than one AVX-512 vector of fp32 (16) runs largely as scalar tail code, and in bf16 / fp16 the kernel
# is slower still than the same softmax computed in fp32. Both rules below apply up to SHORT_SOFTMAX_AXIS elements
# and only on CPU (benchmarks/short_softmax.py, BENCHMARKS.md §6.8). Measured on an AMD EPYC Zen 4 (AVX-512) they pay;
# on a Zen 3 (AVX2: 8 floats per vector, bf16 emulated) they do not: the main job's 16-head attention 0.90-0.91x with
# them in fp32, a bf16 softmax over 8 or 16 elements 0.58-0.79x, whole training steps level. So they are on where
# torch's kernels use AVX-512 and off elsewhere; 0 turns them off.
SHORT_SOFTMAX_AXIS_AVX512 = 16


def short_softmax_axis(cpu_capability: str) -> int:
    """The rules' length for torch's CPU kernel level (``torch.backends.cpu.get_cpu_capability()``)."""
    return SHORT_SOFTMAX_AXIS_AVX512 if cpu_capability.startswith("AVX512") else 0


SHORT_SOFTMAX_AXIS = short_softmax_axis(torch.backends.cpu.get_cpu_capability())


def _softmax_in_fp32(t: torch.Tensor, axis_length: int) -> bool:
    """The first rule: a bf16 / fp16 softmax over this many elements of ``t``'s kind is computed in fp32."""
    short = axis_length <= SHORT_SOFTMAX_AXIS
    return short and t.device.type == "cpu" and t.dtype in (torch.bfloat16, torch.float16)


def _similarity_transposed(keys: torch.Tensor) -> bool:
    """The second rule: an ordinary attention over these keys computes its similarity as (b, h, keys, queries)."""
    return keys.shape[-2] < SHORT_SOFTMAX_AXIS and keys.device.type == "cpu"


def _explicit_rules(kind: str, queries: torch.Tensor, keys: torch.Tensor) -> str:
    """The rules above that the explicit path applies to one call of `kind` ("" for none), for `auto`'s record."""
    n = keys.shape[-2]
    rules = [f"similarity transposed for its {n} keys"] if kind == "attend" and _similarity_transposed(keys) else []
    axes = [("keys", n)] if kind == "attend" else [("tokens", n), ("latents", queries.shape[-2])]
    rules += [f"softmax over {length} {name} in fp32" for name, length in axes if _softmax_in_fp32(queries, length)]
    return "; ".join(rules)


def _softmax(sim: torch.Tensor, dim: int) -> torch.Tensor:
    """``sim.softmax(dim)``; on CPU in bf16 / fp16 over an axis of at most SHORT_SOFTMAX_AXIS, computed in fp32 and
    returned in ``sim``'s dtype (the same numbers up to one rounding, and faster there)."""
    if _softmax_in_fp32(sim, sim.shape[dim]):
        return sim.softmax(dim, dtype=torch.float32).to(sim.dtype)
    return sim.softmax(dim)


def bidirectional_attention(
    r_latents: torch.Tensor,
    v_latents: torch.Tensor,
    r_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    *,
    token_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's bi-directional cross-attention: one similarity matrix, two softmaxes (the ``explicit`` path).

    r_latents, v_latents: (b, h, m, d); r_tokens, v_tokens: (b, h, n, d); token_mask: (b, n) bool, True = real token.
    Returns the latent update (b, h, m, d), the token update (b, h, n, d) (padded tokens' rows not yet zeroed), the
    latents' attention over the tokens (b, h, m, n) and the tokens' attention over the latents (b, h, n, m).
    """
    # (b, h, m, n), computed once; the scale goes on the (b, h, m, d) latents, a pass over m * d elements, not on the
    # similarity's m * n
    sim = (r_latents * r_latents.shape[-1] ** -0.5) @ r_tokens.transpose(-2, -1)
    sim_latents = sim if token_mask is None else sim.masked_fill(~_key_mask(token_mask), float("-inf"))
    attn_latents = _softmax(sim_latents, -1)  # over tokens
    # (b, h, n, m), over latents: softmax along dim -2 of the (b, h, m, n) matrix, then a transposed view. The same
    # numbers as softmax(-1) of the transposed matrix, which on CPU is 7-9x slower with its backward at the main job's
    # shapes and level at BiXT-Ti/4's (benchmarks/softmax_direction.py, BENCHMARKS.md §6.7)
    attn_tokens = _softmax(sim, -2).transpose(-2, -1)
    latents_out = F.dropout(attn_latents, dropout_p) @ v_tokens
    tokens_out = F.dropout(attn_tokens, dropout_p) @ v_latents
    return latents_out, tokens_out, attn_latents, attn_tokens


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordinary scaled dot-product attention, softmax over the keys (the ``explicit`` path of `attend`).

    q: (b, h, i, d); k, v: (b, h, j, d); key_mask: (b, j) bool, True for keys that may be attended to.
    Returns (b, h, i, d) and the (b, h, i, j) attention.
    """
    scale = q.shape[-1] ** -0.5
    if _similarity_transposed(k):
        # few keys (a latent self-attention over 8 latents): the similarity as (b, h, j, i), softmax over its keys
        # axis -2, then a transposed view; the same numbers, without softmax(-1) over a last axis of j < 16 elements
        sim_t = (k * scale) @ q.transpose(-2, -1)
        if key_mask is not None:
            sim_t = sim_t.masked_fill(~key_mask[:, None, :, None], float("-inf"))
        attn = _softmax(sim_t, -2).transpose(-2, -1)
    else:
        sim = (q * scale) @ k.transpose(-2, -1)
        if key_mask is not None:
            sim = sim.masked_fill(~_key_mask(key_mask), float("-inf"))
        attn = _softmax(sim, -1)
    return F.dropout(attn, dropout_p) @ v, attn


@dataclass
class AttentionMaps:
    """Post-softmax attention of one cross-attention layer.

    latents_to_tokens: (b, h, m, n), softmax over tokens: where each latent gathers from.
    tokens_to_latents: (b, h, n, m), softmax over latents: where each token gathers from; None for one-sided layers.
    """

    latents_to_tokens: torch.Tensor
    tokens_to_latents: torch.Tensor | None = None


def _key_mask(token_mask: torch.Tensor | None) -> torch.Tensor | None:
    # (b, n) -> (b, 1, 1, n): broadcast over heads and queries.
    return None if token_mask is None else token_mask[:, None, None, :]


def bidirectional_attend(
    r_latents: torch.Tensor,
    v_latents: torch.Tensor,
    r_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    *,
    token_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_maps: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, AttentionMaps | None]:
    """Both directions of BiXT cross-attention from one shared similarity, on the path in force.

    r_latents, v_latents: (b, h, m, d); r_tokens, v_tokens: (b, h, n, d).
    token_mask: (b, n) bool, True for real tokens. Padded tokens neither contribute to the latents nor receive from
    them (their update is zero). Every sample must have at least one real token (checked by the caller).
    Returns latent update (b, h, m, d), token update (b, h, n, d) and, if asked, the attention maps.
    """
    path = choose_path(
        "bidirectional",
        return_maps,
        dropout_p,
        r_latents,
        r_tokens,
        explicit_rules=lambda: _explicit_rules("bidirectional", r_latents, r_tokens),
    )
    maps = None
    if path == "chunked":
        latents_out, tokens_out = chunked_bidirectional_attend(
            r_latents, v_latents, r_tokens, v_tokens, token_mask=token_mask
        )
    elif path == "triton":
        from bixt.layers.attention_triton import triton_bidirectional_attend  # triton is optional: import on use

        latents_out, tokens_out = triton_bidirectional_attend(
            r_latents, v_latents, r_tokens, v_tokens, token_mask=token_mask
        )
    elif path == "fused":
        latents_out = F.scaled_dot_product_attention(
            r_latents, r_tokens, v_tokens, attn_mask=_key_mask(token_mask), dropout_p=dropout_p
        )
        tokens_out = F.scaled_dot_product_attention(r_tokens, r_latents, v_latents, dropout_p=dropout_p)
    else:
        latents_out, tokens_out, attn_latents, attn_tokens = bidirectional_attention(
            r_latents, v_latents, r_tokens, v_tokens, token_mask=token_mask, dropout_p=dropout_p
        )
        maps = AttentionMaps(attn_latents, attn_tokens) if return_maps else None
    if token_mask is not None:
        tokens_out = tokens_out * token_mask[:, None, :, None].to(tokens_out.dtype)
    return latents_out, tokens_out, maps


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_maps: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ordinary scaled dot-product attention, softmax over the keys, on the path in force.

    q: (b, h, i, d); k, v: (b, h, j, d); key_mask: (b, j) bool, True for keys that may be attended to.
    Returns (b, h, i, d) and, if asked, the (b, h, i, j) attention.
    """
    path = choose_path("attend", return_maps, dropout_p, q, k, explicit_rules=lambda: _explicit_rules("attend", q, k))
    if path == "chunked":
        return chunked_attend(q, k, v, key_mask=key_mask), None
    if path == "triton":
        from bixt.layers.attention_triton import triton_attend

        return triton_attend(q, k, v, key_mask=key_mask), None
    if path == "fused":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=_key_mask(key_mask), dropout_p=dropout_p), None
    out, attn = softmax_attention(q, k, v, key_mask=key_mask, dropout_p=dropout_p)
    return out, (attn if return_maps else None)
