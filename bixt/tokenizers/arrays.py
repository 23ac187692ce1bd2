"""Generic N-D array tokenizer (Perceiver-style): every grid cell is one token.

Each cell's values are concatenated with the Fourier features of its grid coordinates (each axis spanning [-1, 1],
`num_bands` linearly spaced frequencies up to ``max_freq / 2`` per axis, plus the raw coordinate) and linearly
embedded. Works for any number of spatial axes (audio 1-D, images 2-D, volumes or video 3-D, ...).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bixt.layers.pos_embed import fourier_features, grid_coordinates
from bixt.tokenizers.output import TokenizerOutput


class ArrayTokenizer(nn.Module):
    """x: (b, in_chans, *spatial) with len(spatial) = num_axes -> tokens (b, prod(spatial), dim), row-major;
    coords (b, prod(spatial), num_axes) in [-1, 1]; no mask.

    max_freq defaults to the largest grid size seen, i.e. per call the highest band resolves neighbouring cells.
    """

    def __init__(
        self, *, in_chans: int, dim: int, num_axes: int, num_bands: int = 32, max_freq: float | None = None
    ) -> None:
        super().__init__()
        if num_axes < 1 or in_chans < 1:
            raise ValueError(f"need num_axes >= 1 and in_chans >= 1, got {num_axes} and {in_chans}")
        self.in_chans, self.num_axes = in_chans, num_axes
        self.num_bands, self.max_freq = num_bands, max_freq
        self.embed = nn.Linear(in_chans + num_axes * (2 * num_bands + 1), dim)

    def position_features(self, spatial: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(prod(spatial), num_axes * (2 * num_bands + 1)) Fourier features and (prod(spatial), num_axes) coords."""
        coords = grid_coordinates(spatial, device=self.embed.weight.device, dtype=dtype)
        max_freq = self.max_freq if self.max_freq is not None else max(2, *spatial)
        return fourier_features(coords, num_bands=self.num_bands, max_freq=max_freq), coords

    def forward(self, x: torch.Tensor) -> TokenizerOutput:
        if x.ndim != self.num_axes + 2 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected an array of shape (batch, {self.in_chans}, <{self.num_axes} spatial sizes>), "
                f"got {tuple(x.shape)}"
            )
        if not x.dtype.is_floating_point:
            raise TypeError(f"expected a float array, got {x.dtype}")
        b, spatial = x.shape[0], tuple(x.shape[2:])
        feats, coords = self.position_features(spatial, x.dtype)
        values = x.flatten(2).transpose(1, 2)  # (b, n, in_chans), row-major over the spatial axes
        tokens = self.embed(torch.cat((values, feats.expand(b, math.prod(spatial), -1)), dim=-1))
        return TokenizerOutput(tokens=tokens, mask=None, coords=coords.expand(b, -1, -1))
