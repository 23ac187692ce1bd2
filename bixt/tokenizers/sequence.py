"""Sequence tokenizer: integer ids (vocabulary entries or bytes) -> embedded tokens plus 1-D positions.

Id 0 is padding everywhere: the padding mask is derived from it (``ids != 0``), so a ragged batch needs nothing but
zeros after each sequence's end. Byte-level inputs use ``byte + 1`` as id (vocab_size 257), which keeps the byte 0x00
distinct from padding.

Positions are either fixed sine features of the absolute position with a learned projection (``fourier``, any length
up to ``max_length``, no table to store) or a learned table of ``max_length`` rows (``learned``). Both depend on the
absolute position only, so appending padding changes no real token.

``random_offsets=True`` starts each training sequence at a random position in [0, max_length - L] instead of 0, so
that a model trained on short sequences has seen every position up to max_length and cannot tie what it learns to
the absolute positions of the first few hundred (evaluation always starts at 0).

``ngram=k`` (odd) mixes each embedding with its k - 1 nearest neighbours through one k-wide convolution before the
positions are added, so a token arrives as a character or byte k-gram rather than a single symbol, and a byte-level
model sees word fragments from its first step (on IMDB within 500 steps that did not lift either architecture off
chance: RESULTS.md section 4). Padding embeds as zeros, exactly what the convolution's own
zero padding supplies past the end, so appending padding still changes no real token.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from bixt.layers.pos_embed import sinusoidal_features_1d
from bixt.tokenizers.output import TokenizerOutput
from bixt.value_checks import can_check_values

SequencePositions = Literal["fourier", "learned"]
SEQUENCE_POSITIONS: tuple[str, ...] = get_args(SequencePositions)
PADDING_ID = 0


class SequenceTokenizer(nn.Module):
    """ids: (b, L) int64 with 0 = padding, L <= max_length -> tokens (b, L, dim) and mask (b, L) (True = real)."""

    def __init__(
        self,
        *,
        vocab_size: int,
        dim: int,
        max_length: int,
        positions: SequencePositions = "fourier",
        num_position_feats: int = 64,
        ngram: int = 1,
        random_offsets: bool = False,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (id 0 is padding), got {vocab_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        if positions not in SEQUENCE_POSITIONS:
            raise ValueError(f"positions must be one of {SEQUENCE_POSITIONS}, got {positions!r}")
        if ngram < 1 or ngram % 2 == 0:
            raise ValueError(f"ngram must be a positive odd integer (1 = no mixing), got {ngram}")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.positions = positions
        self.num_position_feats = num_position_feats
        self.random_offsets = random_offsets
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PADDING_ID)
        # centred, so that token i sees i - k//2 .. i + k//2 and the output keeps the input's length
        self.ngram = nn.Conv1d(dim, dim, ngram, padding=ngram // 2) if ngram > 1 else None
        if positions == "fourier":
            self.pos_proj = nn.Linear(num_position_feats, dim)
        else:
            self.pos_table = nn.Parameter(torch.zeros(max_length, dim))
            nn.init.trunc_normal_(self.pos_table, std=0.02, a=-2.0, b=2.0)

    def check_input(self, ids: torch.Tensor) -> None:
        """Raise TypeError/ValueError unless ids is a (b, L) integer tensor of valid ids with L <= max_length (the
        range of the ids a value check, `bixt.value_checks`)."""
        if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"expected integer token ids (int64), got {got}")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"expected token ids of shape (batch, length) with length >= 1, got {tuple(ids.shape)}")
        if ids.shape[1] > self.max_length:
            raise ValueError(
                f"sequence length {ids.shape[1]} exceeds the configured maximum of {self.max_length} tokens; "
                "truncate the input or build the model with a larger max_length"
            )
        if not can_check_values(ids) or ids.numel() == 0:
            return
        low, high = torch.stack((ids.min(), ids.max())).tolist()  # one synchronisation, not two
        if low < 0 or high >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}) (0 = padding), got range [{low}, {high}]")

    def position_embedding(self, length: int, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """(1, length, dim): the embedding added to the tokens at positions 0 .. length-1; with offsets (b,) int64,
        (b, length, dim) for positions offsets[i] .. offsets[i] + length-1."""
        device = self.embed.weight.device
        positions = torch.arange(length, device=device)[None]  # (1, length)
        if offsets is not None:
            positions = offsets[:, None] + positions  # (b, length)
        if self.positions == "learned":
            return self.pos_table[positions]
        weight = self.pos_proj.weight
        feats = sinusoidal_features_1d(positions, num_feats=self.num_position_feats, dtype=weight.dtype)
        return self.pos_proj(feats)

    def forward(self, ids: torch.Tensor) -> TokenizerOutput:
        self.check_input(ids)
        tokens = self.embed(ids)  # (b, L, dim)
        if self.ngram is not None:
            tokens = self.ngram(tokens.transpose(1, 2)).transpose(1, 2)
        offsets = None
        if self.random_offsets and self.training:
            batch, length = ids.shape
            offsets = torch.randint(0, self.max_length - length + 1, (batch,), device=ids.device)
        tokens = tokens + self.position_embedding(length=ids.shape[1], offsets=offsets)
        return TokenizerOutput(tokens=tokens, mask=ids != PADDING_ID)
