"""Readers for the Long Range Arena release files (Tay et al. 2021), for users who have ``lra_release``.

* ListOps: ``listops-1000/basic_{train,val,test}.tsv``, a header ``Source<TAB>Target``, then one expression per
  line. The release writes sub-trees in parentheses; they carry no information and are dropped, as LRA's own input
  pipeline does. Items: ``(ids int64 (L,), label int)`` with the ids of :data:`bixt.data.listops.VOCAB`.
* Retrieval (AAN): ``tsv_data/new_aan_pairs.{train,eval,test}.tsv``, no header, columns
  ``label, id1, id2, text1, text2``. Items: ``((ids_a, ids_b), label int)`` in the byte encoding.
* Text: LRA takes IMDB from TensorFlow Datasets, so the release holds no file for it; :func:`read_labelled_text`
  reads the same data exported as ``label<TAB>text`` lines. Items: ``(ids int64 (L,), label int)``.

Every malformed line raises DataFormatError with the file and line number.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.idx import DataFormatError
from bixt.data.listops import NUM_CLASSES, VOCAB, TokenSequenceDataset
from bixt.data.order import seeded_order
from bixt.data.text import ByteTextDataset, encode_bytes

# AAN texts are long; the csv module's default field limit (128 KiB) is too small for some of them.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        yield from enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1)


def _label(value: str, path: Path, line: int, num_classes: int) -> int:
    try:
        label = int(float(value))
    except ValueError:
        raise DataFormatError(f"{path}:{line}: label {value!r} is not a number") from None
    if not 0 <= label < num_classes:
        raise DataFormatError(f"{path}:{line}: label {label} is out of range [0, {num_classes})")
    return label


def read_lra_listops(path: str | Path) -> TokenSequenceDataset:
    """An LRA ListOps TSV file as a dataset of token ids and labels."""
    path = Path(path)
    chunks, labels = [], []
    for line, row in _rows(path):
        if line == 1 and row[:2] == ["Source", "Target"]:
            continue
        if len(row) != 2:
            raise DataFormatError(f"{path}:{line}: expected 2 tab-separated columns (Source, Target), got {len(row)}")
        tokens = [t for t in row[0].split() if t not in ("(", ")")]
        unknown = sorted({t for t in tokens if t not in VOCAB or t == "<pad>"})
        if unknown:
            raise DataFormatError(f"{path}:{line}: unknown ListOps tokens {unknown}")
        chunks.append(np.array([VOCAB[t] for t in tokens], dtype=np.uint8))
        labels.append(_label(row[1], path, line, NUM_CLASSES))
    if not chunks:
        raise DataFormatError(f"{path}: no examples")
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return TokenSequenceDataset(np.concatenate(chunks), offsets, np.asarray(labels, dtype=np.uint8))


class TextPairDataset(Dataset):
    """Pairs of texts with a label: items ``((ids_a int64 (La,), ids_b int64 (Lb,)), label int)``."""

    def __init__(self, pairs: list[tuple[str, str]], labels: list[int], *, max_length: int | None = 4096) -> None:
        self.pairs, self.labels, self.max_length = pairs, labels, max_length

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        a, b = self.pairs[index]
        return (encode_bytes(a, self.max_length), encode_bytes(b, self.max_length)), self.labels[index]


def read_lra_retrieval(path: str | Path, *, max_length: int | None = 4096) -> TextPairDataset:
    """An LRA AAN retrieval TSV file (label, id1, id2, text1, text2) as a dataset of byte-id pairs."""
    path = Path(path)
    pairs, labels = [], []
    for line, row in _rows(path):
        if len(row) != 5:
            raise DataFormatError(
                f"{path}:{line}: expected 5 tab-separated columns (label, id1, id2, text1, text2), got {len(row)}"
            )
        labels.append(_label(row[0], path, line, 2))
        pairs.append((row[3], row[4]))
    if not pairs:
        raise DataFormatError(f"{path}: no examples")
    return TextPairDataset(pairs, labels, max_length=max_length)


def read_labelled_text(
    path: str | Path, *, num_classes: int = 2, max_length: int | None = 4096, seed: int = 0
) -> ByteTextDataset:
    """``label<TAB>text`` lines (LRA Text exported from TFDS, or a user's own file) as a dataset of byte ids, in a
    random order fixed by ``seed`` (see ``seeded_order``: such files are often sorted by label)."""
    path = Path(path)
    texts, labels = [], []
    for line, row in _rows(path):
        if len(row) != 2:
            raise DataFormatError(f"{path}:{line}: expected 2 tab-separated columns (label, text), got {len(row)}")
        labels.append(_label(row[0], path, line, num_classes))
        texts.append(row[1])
    if not texts:
        raise DataFormatError(f"{path}: no examples")
    order = seeded_order(list(range(len(texts))), seed)
    return ByteTextDataset([texts[i] for i in order], [labels[i] for i in order], max_length=max_length)
