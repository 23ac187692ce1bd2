"""LRA ListOps: nested list operations over single digits, generated from the published grammar and evaluated.

Grammar (LRA, Tay et al. 2021, after Nangia & Bowman 2018)::

    expr := digit | "[" OP expr expr* "]"      OP in MAX, MIN, MED (median, rounded down), SM (sum mod 10)

with operators nested at most ``max_depth`` (10) deep, at most ``max_args`` (10) arguments each, and whole
sequences between ``min_length`` and ``max_length`` (500-2000) tokens. The label is the value, one of 10 classes.
Written as tokens: ``[MAX 2 9 [MIN 4 7 ] 0 ]``. Sizes as in LRA: 96,000 train / 2,000 val / 2,000 test.

Token ids (``VOCAB``): 0 padding, digits 0-9 -> 1-10, ``[MAX [MIN [MED [SM`` -> 11-14, ``]`` -> 15.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.generated import cached_arrays

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
CLOSE = "]"
VOCAB: dict[str, int] = {
    "<pad>": 0,
    **{str(d): d + 1 for d in range(10)},
    **{op: 11 + i for i, op in enumerate(OPERATORS)},
    CLOSE: 15,
}
VOCAB_SIZE = len(VOCAB)
ID_TO_TOKEN = {i: t for t, i in VOCAB.items()}
NUM_CLASSES = 10
DEFAULT_SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
# Chance that a node above the depth limit is an operator rather than a digit; with 2-10 arguments this grows
# trees whose lengths straddle the 500-2000 window, so that few draws are rejected.
_OPERATOR_PROB = 0.25
_GENERATOR_VERSION = 2  # bump when the sampling changes, so cached sets are rebuilt


@dataclass(frozen=True)
class ListOpsConfig:
    """Parameters of the ListOps generator (defaults: LRA)."""

    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000

    def __post_init__(self) -> None:
        if self.max_depth < 1 or self.max_args < 2:
            raise ValueError(f"need max_depth >= 1 and max_args >= 2, got {self.max_depth}, {self.max_args}")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")


def apply_operator(op: str, values: list[int]) -> int:
    """The value of ``[op values... ]``."""
    if op == "[MAX":
        return max(values)
    if op == "[MIN":
        return min(values)
    if op == "[MED":
        ordered = sorted(values)
        mid = len(ordered) // 2
        # The median of an even count is the mean of the middle two, rounded down (int(np.median) in LRA).
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}; expected one of {OPERATORS}")


def evaluate(tokens: list[str]) -> int:
    """The value of a ListOps expression given as tokens; ValueError if it is not well formed."""
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for position, token in enumerate(tokens):
        if result is not None:
            raise ValueError(f"token {position} ({token!r}) follows a complete expression")
        if token in OPERATORS:
            stack.append((token, []))
        elif token == CLOSE:
            if not stack or not stack[-1][1]:
                raise ValueError(f"token {position}: ']' without an open operator with arguments")
            op, values = stack.pop()
            value = apply_operator(op, values)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif len(token) == 1 and token.isdigit():
            if stack:
                stack[-1][1].append(int(token))
            else:
                result = int(token)
        else:
            raise ValueError(f"token {position}: {token!r} is not a digit, an operator or ']'")
    if stack or result is None:
        raise ValueError(f"expression ends with {len(stack)} operator(s) still open")
    return result


def depth_of(tokens: list[str]) -> int:
    """Maximum nesting of operators."""
    depth = deepest = 0
    for token in tokens:
        depth += token in OPERATORS
        deepest = max(deepest, depth)
        depth -= token == CLOSE
    return deepest


class _TooLong(Exception):
    pass


def _grow(rng: random.Random, depth: int, config: ListOpsConfig, out: list[str]) -> int:
    """Append one random expression at nesting ``depth`` to ``out`` and return its value.

    An operator at ``depth`` is the depth-th nested one (the root is 1). Raises _TooLong once past ``max_length``.
    """
    if len(out) >= config.max_length:
        raise _TooLong
    if depth > config.max_depth or rng.random() >= _OPERATOR_PROB:
        digit = rng.randrange(10)
        out.append(str(digit))
        return digit
    op = OPERATORS[rng.randrange(len(OPERATORS))]
    out.append(op)
    values = [_grow(rng, depth + 1, config, out) for _ in range(rng.randint(2, config.max_args))]
    out.append(CLOSE)
    return apply_operator(op, values)


def sample_expression(rng: random.Random, config: ListOpsConfig) -> tuple[list[str], int]:
    """One expression whose length is within the config's window (rejection sampling), and its value.

    The root is always an operator, as in LRA (a lone digit is not a list operation).
    """
    while True:
        out = [OPERATORS[rng.randrange(len(OPERATORS))]]
        try:
            values = [_grow(rng, 2, config, out) for _ in range(rng.randint(2, config.max_args))]
        except _TooLong:
            continue
        out.append(CLOSE)
        if config.min_length <= len(out) <= config.max_length:
            return out, apply_operator(out[0], values)


def encode(tokens: list[str]) -> np.ndarray:
    """uint8 ids of tokens (see ``VOCAB``)."""
    return np.fromiter((VOCAB[t] for t in tokens), dtype=np.uint8, count=len(tokens))


def decode(ids: torch.Tensor | np.ndarray) -> list[str]:
    """Tokens of ids, padding dropped."""
    return [ID_TO_TOKEN[int(i)] for i in ids if int(i) != 0]


def _generate_chunk(num_examples: int, chunk_seed: str, config: ListOpsConfig) -> tuple[list[np.ndarray], list[int]]:
    rng = random.Random(chunk_seed)
    chunks, labels = [], []
    for _ in range(num_examples):
        tokens, value = sample_expression(rng, config)
        chunks.append(encode(tokens))
        labels.append(value)
    return chunks, labels


def generate(
    num_examples: int, seed: int, config: ListOpsConfig, *, workers: int | None = None, chunk_size: int = 1000
) -> dict[str, np.ndarray]:
    """``num_examples`` expressions as flat ``tokens`` (uint8), ``offsets`` (int64, N + 1) and ``labels`` (uint8).

    Examples are drawn in fixed chunks of ``chunk_size`` with their own seeds, so the result is the same for any
    number of ``workers`` (processes; default: one per CPU). Pure Python costs about 2 ms per example.
    """
    sizes = [min(chunk_size, num_examples - start) for start in range(0, num_examples, chunk_size)]
    jobs = [(n, f"listops-{seed}-{i}", config) for i, n in enumerate(sizes)]
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_generate_chunk, *zip(*jobs, strict=True)))
    else:
        results = [_generate_chunk(*job) for job in jobs]
    chunks = [c for part, _ in results for c in part]
    labels = [v for _, part in results for v in part]
    offsets = np.zeros(num_examples + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return {"tokens": tokens, "offsets": offsets, "labels": np.asarray(labels, dtype=np.uint8)}


class TokenSequenceDataset(Dataset):
    """Ragged token sequences stored flat: items ``(ids int64 (L,), label int)``."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> None:
        if offsets.shape != (labels.shape[0] + 1,) or offsets[-1] != tokens.shape[0]:
            raise ValueError(
                f"offsets {offsets.shape} do not fit {labels.shape[0]} labels and {tokens.shape[0]} tokens"
            )
        self.tokens, self.offsets, self.labels = torch.from_numpy(tokens), offsets, labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.tokens[start:end].long(), int(self.labels[index])


def listops_split(
    split: str,
    cache_dir: Path,
    *,
    num_examples: int | None = None,
    seed: int = 0,
    config: ListOpsConfig | dict[str, int] | None = None,
) -> TokenSequenceDataset:
    """The ``split`` of generated ListOps (cached under ``cache_dir/generated``); each split has its own stream.

    ``config`` may be a mapping of `ListOpsConfig` fields, as a recipe gives it (``data.options.config``).
    """
    if split not in DEFAULT_SIZES:
        raise ValueError(f"split must be one of {tuple(DEFAULT_SIZES)}, got {split!r}")
    if isinstance(config, dict):
        unknown = sorted(set(config) - {f.name for f in fields(ListOpsConfig)})
        if unknown:
            valid = [f.name for f in fields(ListOpsConfig)]
            raise ValueError(f"unknown ListOps generator options {unknown}; valid: {valid}")
        config = ListOpsConfig(**config)
    config = config or ListOpsConfig()
    count = DEFAULT_SIZES[split] if num_examples is None else num_examples
    # Distinct, fixed seeds per split: the test set does not depend on how many training examples were drawn.
    split_seed = seed * 1000 + tuple(DEFAULT_SIZES).index(split)
    params = {"split": split, "num_examples": count, "seed": seed, "version": _GENERATOR_VERSION, **asdict(config)}
    arrays = cached_arrays(cache_dir, "listops", params, lambda: generate(count, split_seed, config))
    return TokenSequenceDataset(arrays["tokens"], arrays["offsets"], arrays["labels"])
