"""Which implementation of the attention math runs: the path policy (`attention_math.py` holds the math itself).

Four interchangeable paths compute the same attention (`attention_math.py` describes each): ``explicit``, ``fused``,
``chunked`` and ``triton``. ``auto`` (the default) picks a path per call from the device type, the dtype of the
inputs (under autocast, the autocast dtype) and the size of the similarity matrix, by the measured rules of
``AUTO_RULES``: on CPU in fp32, ``explicit`` while the matrix is small (at most ``AUTO_EXPLICIT_MAX_SIMILARITY``
elements, e.g. batch 8 of BiXT-Ti at 196 tokens), where the reference path is at least as fast as two fused kernels
and its extra memory is small, and ``fused`` above, where PyTorch's flash-attention kernel keeps memory linear in n
and beats the chunked path's eager elementwise ops; on CPU in bf16, whose flash backward is slow with few queries,
``explicit`` and then ``chunked``, but ``fused`` for large square attention (BENCHMARKS.md §1, §6). What it chose is
recorded (`auto_choices`; runs write it to kernels.json, benchmarks to their records). The choice of path is global:
``set_attention_path``, the ``attention_path`` context manager, or the environment variable ``BIXT_ATTN``. Asking for
attention maps always runs ``explicit``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from bixt.layers.switch import Switch

AttentionPath = Literal["auto", "explicit", "fused", "chunked", "triton"]
ATTENTION_PATHS: tuple[str, ...] = get_args(AttentionPath)

# auto: the largest similarity matrix (b * h * m * n elements) still computed explicitly (4 MiB in fp32). Below it the
# explicit and fused paths ran within ~10% of each other either way (BiXT-Ti batch 8 at 196 tokens, the main job);
# above it the fused path needed less memory (576 tokens: 1.3 vs 1.6 GB), then ran faster (BENCHMARKS.md §1).
AUTO_EXPLICIT_MAX_SIMILARITY = 2**20

_PATH = Switch("attention path", "BIXT_ATTN", ATTENTION_PATHS, "auto")


def get_attention_path() -> str:
    """The attention path in force: the one set in Python, else ``$BIXT_ATTN``, else ``auto``."""
    return _PATH.get()


def set_attention_path(path: AttentionPath | None) -> None:
    """Force an attention path for every model (``None`` returns to ``$BIXT_ATTN`` / ``auto``)."""
    _PATH.set(path)


def attention_path(path: AttentionPath) -> AbstractContextManager[None]:
    """Use `path` inside the ``with`` block, then restore what was in force before."""
    return _PATH.using(path)


@dataclass(frozen=True)
class AutoRule:
    """How ``auto`` picks a path for one device type and dtype: explicit while the similarity matrix has at most
    `explicit_max_similarity` elements (b * h * m * n), `large_path` above. Where `square_min` is set, calls whose
    queries and keys both number at least that many (a full Transformer's n x n attention) have a rule of their own:
    explicit up to `square_explicit_max` elements, `square_path` above. `measured` names the measurement."""

    explicit_max_similarity: int
    large_path: str
    measured: str
    square_min: int | None = None
    square_explicit_max: int | None = None
    square_path: str | None = None

    def __post_init__(self) -> None:
        square = (self.square_min, self.square_explicit_max, self.square_path)
        if None in square and any(v is not None for v in square):
            raise ValueError(
                f"a square-attention rule needs square_min, square_explicit_max and square_path together, got {square}"
            )

    def path_for(self, b: int, h: int, m: int, n: int) -> str:
        """The path for b * h similarity matrices of m queries against n keys."""
        elements = b * h * m * n
        if self.square_min is not None and min(m, n) >= self.square_min:
            return "explicit" if elements <= self.square_explicit_max else self.square_path
        return "explicit" if elements <= self.explicit_max_similarity else self.large_path


# auto, per (device type, dtype of the attention inputs; under autocast the autocast dtype). See the module docstring.
AUTO_RULES: dict[tuple[str, torch.dtype], AutoRule] = {
    ("cpu", torch.float32): AutoRule(
        AUTO_EXPLICIT_MAX_SIMILARITY, "fused", "BENCHMARKS.md §1 (AMD EPYC, AVX2) and §6 (AMD EPYC Zen 4, AVX-512)"
    ),
    # bf16: with few queries (BiXT's latents) the flash kernel's backward is slow on CPU (3.2x its fp32 time at 3,136
    # tokens), so the shared similarity is computed explicitly up to 2^27 elements: explicit was the fastest path at
    # 196, 784 and 3,136 tokens (BiXT-Ti, batch 8; at 3,136 1.24-1.42x the chunked path over two idle passes), at
    # 4,096 tokens (the LRA model, batch 32: 1.12-1.23x; batch 256, 67M elements: 1.15x), and level or ahead at
    # 12,544 tokens (BiXT-Ti, 38.5M elements: 1.00-1.07x). Above 2^27, where each (b, h, m, n) matrix passes 256 MiB,
    # chunks, which keep the least memory. A full Transformer's square attention has a rule of its own: from 256
    # queries and keys and above 2^22 elements the flash kernel is 1.6-3.0x faster than chunks (and the fastest of
    # the three at 1,024 and 2,048 tokens). BENCHMARKS.md §6.2, AMD EPYC Zen 4 (AVX512-BF16).
    ("cpu", torch.bfloat16): AutoRule(
        2**27,
        "chunked",
        "BENCHMARKS.md §6.2 (AMD EPYC Zen 4, AVX512-BF16, no AMX)",
        square_min=256,
        square_explicit_max=2**22,
        square_path="fused",
    ),
}
# Device types and dtypes without a measurement of their own (CUDA: no GPU was lent when the rules were measured).
AUTO_RULE_UNMEASURED = AutoRule(AUTO_EXPLICIT_MAX_SIMILARITY, "fused", "not measured: the fp32 CPU rule")

_auto_choices: dict[str, str] = {}


def auto_rule(device_type: str, dtype: torch.dtype) -> AutoRule:
    return AUTO_RULES.get((device_type, dtype), AUTO_RULE_UNMEASURED)


def auto_choices() -> dict[str, str]:
    """What ``auto`` chose since the last `clear_auto_choices`: ``"<kind> b,h,m,n <dtype> <device>"`` -> path, the
    explicit path with the short-softmax rules it applied in brackets (`attention_math.py`)."""
    return dict(_auto_choices)


def clear_auto_choices() -> None:
    _auto_choices.clear()


def _without_dropout(path: str) -> bool:
    return path in ("chunked", "triton")


def choose_path(
    kind: str,
    need_maps: bool,
    dropout_p: float,
    queries: torch.Tensor,
    keys: torch.Tensor,
    explicit_rules: Callable[[], str] | None = None,
) -> str:
    """The path for one call: queries (b, h, m, d) against keys (b, h, n, d) (either batch may be 1, shared).

    explicit_rules: what the explicit path does differently for these inputs ("" for nothing), asked only when
    ``auto`` chooses it, so that the record names it, e.g. ``"explicit (softmax over 8 latents in fp32)"``."""
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
        path = rule.path_for(b, h, m, n)
        if _without_dropout(path) and dropout_p > 0:
            path = "fused"  # the only fast path with attention dropout
        dtype = str(queries.dtype).removeprefix("torch.")
        rules = explicit_rules() if path == "explicit" and explicit_rules is not None else ""
        _auto_choices[f"{kind} {b},{h},{m},{n} {dtype} {queries.device.type}"] = f"{path} ({rules})" if rules else path
    elif _without_dropout(path) and dropout_p > 0:
        raise ValueError(f"the {path} attention path has no attention dropout, got dropout_p={dropout_p}")
    return path


def resolved_attention_path(model: nn.Module, device: torch.device | str, dtype: torch.dtype) -> str:
    """The attention path `model` trains with on `device` in `dtype` (the autocast dtype under mixed precision), for
    a run's saved config: the forced path, or for ``auto`` its rule, e.g. ``"auto: explicit up to 1048576 similarity
    elements (b*h*m*n), fused above (BENCHMARKS.md ...)"``. Per-call choices are `auto_choices`."""
    path = get_attention_path()
    if path != "auto":
        return path
    rule = auto_rule(torch.device(device).type, dtype)
    large = rule.large_path
    if _without_dropout(large) and any(
        isinstance(p := getattr(m, "attn_drop", None), float) and p > 0 for m in model.modules()
    ):
        large = "fused"  # as `choose_path` does in training, where attention dropout is on
    square = (
        ""
        if rule.square_min is None
        else f" (for >= {rule.square_min} queries and keys: explicit up to {rule.square_explicit_max}, "
        f"{rule.square_path} above)"
    )
    return (
        f"auto: explicit up to {rule.explicit_max_similarity} similarity elements (b*h*m*n), {large} above{square} "
        f"({rule.measured})"
    )
