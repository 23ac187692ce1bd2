"""What every tokenizer returns: tokens, their padding mask and, where they exist, their coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenizerOutput:
    """tokens: (b, n, dim); mask: (b, n) bool, True = real token, or None when nothing is padded (images);
    coords: (b, n, k) the position of each token in its input space (points: xyz, arrays: grid coordinates), or None.
    """

    tokens: torch.Tensor
    mask: torch.Tensor | None = None
    coords: torch.Tensor | None = None
