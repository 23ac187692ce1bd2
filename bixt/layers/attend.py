"""Attention math, kept apart from the projections that feed it.

Legend for every shape in this package:
    b  batch            h  heads            d  channels per head
    m  latents          n  tokens           (b, h, m, n) is one similarity matrix per head

BiXT's bi-directional cross-attention computes one similarity matrix A = R_lat R_tok^T / sqrt(d) per head and uses it
twice: softmax over the tokens (each latent gathers from the tokens) and softmax over the latents (each token gathers
from the latents). Four interchangeable implementations exist:

- ``explicit``: materialises A and both softmaxes; the reference, and the only path that can return attention maps.
- ``fused``: two calls of ``scaled_dot_product_attention``, one per direction; no (b, h, m, n) tensor is kept for the
  backward pass, at the price of computing A twice.
- ``chunked``: tokens in chunks, each similarity tile computed once and used by both directions (online softmax over
  the tokens), a backward pass that recomputes the tiles (`attend_chunked.py`); memory O(b h (m + n)) beyond inputs
  and outputs. No attention dropout.
- ``triton``: a Triton kernel computing each similarity tile once for both directions (`attend_triton.py`), with the
  chunked path's backward; CUDA, or CPU under ``TRITON_INTERPRET=1`` for checks. No attention dropout.

``auto`` (the default) picks a path per call from the device type, the dtype of the inputs (under autocast, the
autocast dtype) and the size of the similarity matrix, by the measured rules of ``AUTO_RULES``: on CPU in fp32,
``explicit`` while the matrix is small (at most ``AUTO_EXPLICIT_MAX_SIMILARITY`` elements, e.g. batch 8 of BiXT-Ti
at 196 tokens), where the reference path is at least as fast as two fused kernels and its extra memory is small, and
``fused`` above, where PyTorch's flash-attention kernel keeps memory linear in n and beats the chunked path's eager
elementwise ops; on CPU in bf16, whose flash backward is slow, ``explicit`` and then ``chunked`` (BENCHMARKS.md §1,
§6). What it chose is recorded (`auto_choices`; runs write it to kernels.json, benchmarks to their records). The
choice of path is global: ``set_attention_path``, the ``attention_path`` context manager, or the environment
variable ``BIXT_ATTN``. Asking for attention maps always runs ``explicit``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from bixt.layers.attend_chunked import chunked_attend, chunked_bidirectional_attend

AttentionPath = Literal["auto", "explicit", "fused", "chunked", "triton"]
ATTENTION_PATHS: tuple[str, ...] = ("auto", "explicit", "fused", "chunked", "triton")

# auto: the largest similarity matrix (b * h * m * n elements) still computed explicitly (4 MiB in fp32). Below it the
# explicit and fused paths ran within ~10% of each other either way (BiXT-Ti batch 8 at 196 tokens, the main job);
# above it the fused path needed less memory (576 tokens: 1.3 vs 1.6 GB), then ran faster (BENCHMARKS.md §1).
AUTO_EXPLICIT_MAX_SIMILARITY = 2**20

_forced_path: str | None = None


def _check_path(path: str) -> str:
    if path not in ATTENTION_PATHS:
        raise ValueError(f"attention path must be one of {ATTENTION_PATHS}, got {path!r}")
    return path


def get_attention_path() -> str:
    """The attention path in force: the one set in Python, else ``$BIXT_ATTN``, else ``auto``."""
    if _forced_path is not None:
        return _forced_path
    return _check_path(os.environ.get("BIXT_ATTN", "auto"))


def set_attention_path(path: AttentionPath | None) -> None:
    """Force an attention path for every model (``None`` returns to ``$BIXT_ATTN`` / ``auto``)."""
    global _forced_path
    _forced_path = None if path is None else _check_path(path)


@contextmanager
def attention_path(path: AttentionPath) -> Iterator[None]:
    """Use `path` inside the ``with`` block, then restore what was in force before."""
    global _forced_path
    previous = _forced_path
    set_attention_path(path)
    try:
        yield
    finally:
        _forced_path = previous


@dataclass(frozen=True)
class AutoRule:
    """How ``auto`` picks a path for one device type and dtype: explicit while the similarity matrix has at most
    `explicit_max_similarity` elements (b * h * m * n), `large_path` above. `measured` names the measurement."""

    explicit_max_similarity: int
    large_path: str
    measured: str


# auto, per (device type, dtype of the attention inputs; under autocast the autocast dtype). See the module docstring.
AUTO_RULES: dict[tuple[str, torch.dtype], AutoRule] = {
    ("cpu", torch.float32): AutoRule(
        AUTO_EXPLICIT_MAX_SIMILARITY, "fused", "BENCHMARKS.md §1 (AMD EPYC, AVX2) and §6 (AMD EPYC Zen 4, AVX-512)"
    ),
    # bf16: the flash kernel's backward is slow on CPU (3.2x its fp32 time at 3,136 tokens), so the shared similarity
    # is computed explicitly up to 2^22 elements (fastest at 196 and 784 tokens, batch 8) and in chunks above (fastest
    # at 3,136 tokens, and the least memory); BENCHMARKS.md §6, AMD EPYC Zen 4 (AVX512-BF16).
    ("cpu", torch.bfloat16): AutoRule(2**22, "chunked", "BENCHMARKS.md §6 (AMD EPYC Zen 4, AVX512-BF16, no AMX)"),
}
# Device types and dtypes without a measurement of their own (CUDA: no GPU was lent when the rules were measured).
AUTO_RULE_UNMEASURED = AutoRule(AUTO_EXPLICIT_MAX_SIMILARITY, "fused", "not measured: the fp32 CPU rule")

_auto_choices: dict[str, str] = {}


def auto_rule(device_type: str, dtype: torch.dtype) -> AutoRule:
    return AUTO_RULES.get((device_type, dtype), AUTO_RULE_UNMEASURED)


def auto_choices() -> dict[str, str]:
    """What ``auto`` chose since the last `clear_auto_choices`: ``"<kind> b,h,m,n <dtype> <device>"`` -> path."""
    return dict(_auto_choices)


def clear_auto_choices() -> None:
    _auto_choices.clear()


def _resolve(kind: str, need_maps: bool, dropout_p: float, queries: torch.Tensor, keys: torch.Tensor) -> str:
    """The path for one call: queries (b, h, m, d) against keys (b, h, n, d) (either batch may be 1, shared)."""
    path = get_attention_path()
    if need_maps or path == "explicit":
        return "explicit"
    if path == "auto" and is_fx_symbolic_tracing():
        # an FX graph cannot choose by input size (its sizes are symbols): the fused path is right for any size
        return "fused"
    if path == "auto":
        rule = auto_rule(queries.device.type, queries.dtype)
        b, h, m = max(queries.shape[0], keys.shape[0]), queries.shape[1], queries.shape[2]
        n = keys.shape[2]
        path = "explicit" if b * h * m * n <= rule.explicit_max_similarity else rule.large_path
        if path in ("chunked", "triton") and dropout_p > 0:
            path = "fused"  # the only fast path with attention dropout
        dtype = str(queries.dtype).removeprefix("torch.")
        _auto_choices[f"{kind} {b},{h},{m},{n} {dtype} {queries.device.type}"] = path
    elif path in ("chunked", "triton") and dropout_p > 0:
        raise ValueError(f"the {path} attention path has no attention dropout, got dropout_p={dropout_p}")
    return path


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
    """Both directions of BiXT cross-attention from one shared similarity.

    r_latents, v_latents: (b, h, m, d); r_tokens, v_tokens: (b, h, n, d).
    token_mask: (b, n) bool, True for real tokens. Padded tokens neither contribute to the latents nor receive from
    them (their update is zero). Every sample must have at least one real token (checked by the caller).
    Returns latent update (b, h, m, d), token update (b, h, n, d) and, if asked, the attention maps.
    """
    key_mask = _key_mask(token_mask)
    path = _resolve("bidirectional", return_maps, dropout_p, r_latents, r_tokens)
    if path == "chunked":
        latents_out, tokens_out = chunked_bidirectional_attend(
            r_latents, v_latents, r_tokens, v_tokens, token_mask=token_mask
        )
        maps = None
    elif path == "triton":
        from bixt.layers.attend_triton import triton_bidirectional_attend  # triton is optional: import on use

        latents_out, tokens_out = triton_bidirectional_attend(
            r_latents, v_latents, r_tokens, v_tokens, token_mask=token_mask
        )
        maps = None
    elif path == "fused":
        latents_out = F.scaled_dot_product_attention(
            r_latents, r_tokens, v_tokens, attn_mask=key_mask, dropout_p=dropout_p
        )
        tokens_out = F.scaled_dot_product_attention(r_tokens, r_latents, v_latents, dropout_p=dropout_p)
        maps = None
    else:
        # (b, h, m, n), computed once; the scale goes on the (b, h, m, d) latents, a pass over m * d elements, not on
        # the similarity's m * n
        sim = (r_latents * r_latents.shape[-1] ** -0.5) @ r_tokens.transpose(-2, -1)
        sim_latents = sim if key_mask is None else sim.masked_fill(~key_mask, float("-inf"))
        attn_latents = sim_latents.softmax(dim=-1)  # over tokens
        attn_tokens = sim.transpose(-2, -1).softmax(dim=-1)  # (b, h, n, m), over latents
        maps = AttentionMaps(attn_latents, attn_tokens) if return_maps else None
        latents_out = F.dropout(attn_latents, dropout_p) @ v_tokens
        tokens_out = F.dropout(attn_tokens, dropout_p) @ v_latents
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
    """Ordinary scaled dot-product attention, softmax over the keys.

    q: (b, h, i, d); k, v: (b, h, j, d); key_mask: (b, j) bool, True for keys that may be attended to.
    Returns (b, h, i, d) and, if asked, the (b, h, i, j) attention.
    """
    mask = _key_mask(key_mask)
    path = _resolve("attend", return_maps, dropout_p, q, k)
    if path == "chunked":
        return chunked_attend(q, k, v, key_mask=key_mask), None
    if path == "triton":
        from bixt.layers.attend_triton import triton_attend

        return triton_attend(q, k, v, key_mask=key_mask), None
    if path == "fused":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
    sim = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        sim = sim.masked_fill(~mask, float("-inf"))
    attn = sim.softmax(dim=-1)
    return F.dropout(attn, dropout_p) @ v, (attn if return_maps else None)
