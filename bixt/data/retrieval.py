"""Document retrieval pairs from Jane Austen's six novels (the stand-in for LRA Retrieval on the AAN corpus).

Each novel is cut into chapters, each chapter into passages of whole paragraphs up to ``passage_chars``
characters. Chapters (not passages) are assigned to train / val / test by a seeded permutation per novel, so no
passage, and no chapter, appears in two splits. A pair is two passages of the same split; label 1 if they come from
the same novel, 0 otherwise, balanced. Items: ``((ids_a int64 (La,), ids_b int64 (Lb,)), label int)`` in the LRA
byte encoding (see :mod:`bixt.data.text`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.idx import DataFormatError
from bixt.data.text import encode_bytes

_CHAPTER = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.1}
DEFAULT_PAIRS = {"train": 20_000, "val": 2_000, "test": 2_000}


def chapters_of(lines: list[str]) -> list[list[str]]:
    """The chapters of a novel as lists of lines, headings and front matter dropped."""
    chapters: list[list[str]] = []
    for line in lines:
        if _CHAPTER.match(line):
            chapters.append([])
        elif chapters:
            chapters[-1].append(line)
    return chapters


def passages_of(chapter: list[str], passage_chars: int) -> list[str]:
    """Whole paragraphs (blank-line separated) packed greedily into passages of at most ``passage_chars``."""
    paragraphs, current = [], []
    for line in [*chapter, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    passages, buffer = [], ""
    for paragraph in paragraphs:
        candidate = f"{buffer}\n{paragraph}" if buffer else paragraph
        if len(candidate) <= passage_chars:
            buffer = candidate
            continue
        if buffer:
            passages.append(buffer)
        buffer = paragraph[:passage_chars]  # a paragraph longer than a passage is cut, not dropped
    if buffer:
        passages.append(buffer)
    return passages


def split_passages(
    books: dict[str, list[str]], split: str, *, passage_chars: int = 2000, seed: int = 0
) -> tuple[list[str], list[int]]:
    """(passages, novel index of each) for the chapters assigned to ``split``."""
    passages, owners = [], []
    for book_index, (name, lines) in enumerate(books.items()):
        chapters = chapters_of(lines)
        if len(chapters) < 3:
            raise DataFormatError(f"novel {name!r}: found {len(chapters)} chapter headings, need at least 3 to split")
        order = np.random.default_rng([seed, book_index]).permutation(len(chapters))
        n_val = max(1, round(len(chapters) * SPLIT_FRACTIONS["val"]))
        n_test = max(1, round(len(chapters) * SPLIT_FRACTIONS["test"]))
        parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        for c in sorted(parts[split]):
            found = passages_of(chapters[c], passage_chars)
            passages += found
            owners += [book_index] * len(found)
    return passages, owners


class PassagePairDataset(Dataset):
    """Balanced same-novel / different-novel passage pairs, drawn once from a seed."""

    def __init__(
        self, passages: list[str], owners: list[int], *, num_pairs: int, max_length: int | None = 4096, seed: int = 0
    ) -> None:
        owners_arr = np.asarray(owners)
        if len(set(owners)) < 2:
            raise ValueError("retrieval pairs need passages from at least two novels")
        rng = np.random.default_rng(seed)
        by_owner = [np.flatnonzero(owners_arr == o) for o in sorted(set(owners))]
        pairs = []
        for i in range(num_pairs):
            same = i % 2 == 0
            if same:
                pool = by_owner[rng.integers(len(by_owner))]
                a, b = rng.choice(pool, size=2, replace=False)
            else:
                first, second = rng.choice(len(by_owner), size=2, replace=False)
                a, b = rng.choice(by_owner[first]), rng.choice(by_owner[second])
            pairs.append((int(a), int(b), int(same)))
        self.passages, self.owners, self.pairs, self.max_length = passages, owners, pairs, max_length

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        a, b, label = self.pairs[index]
        return (encode_bytes(self.passages[a], self.max_length), encode_bytes(self.passages[b], self.max_length)), label


def austen_pairs(
    books_json: str | Path,
    split: str,
    *,
    num_pairs: int | None = None,
    passage_chars: int = 2000,
    max_length: int | None = 4096,
    seed: int = 0,
) -> PassagePairDataset:
    """The ``split`` of Austen retrieval pairs from the ``books.json`` that ``bixt data fetch austen`` writes."""
    if split not in DEFAULT_PAIRS:
        raise ValueError(f"split must be one of {tuple(DEFAULT_PAIRS)}, got {split!r}")
    books = json.loads(Path(books_json).read_text())
    passages, owners = split_passages(books, split, passage_chars=passage_chars, seed=seed)
    pair_seed = [seed, tuple(DEFAULT_PAIRS).index(split)]
    return PassagePairDataset(
        passages,
        owners,
        num_pairs=DEFAULT_PAIRS[split] if num_pairs is None else num_pairs,
        max_length=max_length,
        seed=np.random.default_rng(pair_seed).integers(2**32),
    )
