"""Collate ragged items into padded batches with boolean masks (True = a real token, False = padding).

Items are ``(input, target, *extra)``:

* ``input``: a tensor (L, ...) whose first dimension may differ between items, or a tuple of such tensors
  (retrieval pairs). Padded with ``pad_value`` (0, the padding id of every vocabulary here) to the longest item.
* ``target``: an int, or a tensor (per-token labels, padded with ``ignore_index`` so losses skip padding).
* ``extra``: further ints or equally shaped tensors (e.g. ShapeNetPart's category), stacked.

:func:`collate_padded` returns ``(input (b, L, ...), mask bool (b, L), target, *extra)``; for tuple inputs, input
and mask are tuples of the same length. Fixed-size inputs come back with an all-True mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100  # the label of padding positions, which losses and metrics skip (the engine's one definition)


def pad_sequences(sequences: Sequence[torch.Tensor], pad_value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad tensors (L_i, ...) to (b, max L, ...); returns (padded, mask bool (b, max L), True = real)."""
    if not sequences:
        raise ValueError("cannot pad an empty list of sequences")
    trailing = sequences[0].shape[1:]
    for i, s in enumerate(sequences):
        if s.ndim == 0 or s.shape[1:] != trailing:
            raise ValueError(f"sequence {i} has shape {tuple(s.shape)}; expected (L, {', '.join(map(str, trailing))})")
    lengths = torch.tensor([s.shape[0] for s in sequences])
    padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=pad_value)
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    return padded, mask


def _stack(values: Sequence[Any]) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(list(values))
    return torch.as_tensor(values)


def collate_padded(
    batch: Sequence[tuple[Any, ...]], *, pad_value: float = 0, ignore_index: int = IGNORE_INDEX
) -> tuple[Any, ...]:
    """Collate ``(input, target, *extra)`` items; see the module docstring for what comes back."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    columns = list(zip(*batch, strict=True))
    inputs, targets, extras = columns[0], columns[1], columns[2:]
    if isinstance(inputs[0], tuple):
        pairs = [pad_sequences(list(part), pad_value) for part in zip(*inputs, strict=True)]
        padded_input: Any = tuple(p for p, _ in pairs)
        mask: Any = tuple(m for _, m in pairs)
    else:
        padded_input, mask = pad_sequences(list(inputs), pad_value)
    if isinstance(targets[0], torch.Tensor) and targets[0].ndim > 0:
        target, _ = pad_sequences(list(targets), ignore_index)
    else:
        target = _stack(targets)
    return (padded_input, mask, target, *(_stack(e) for e in extras))
