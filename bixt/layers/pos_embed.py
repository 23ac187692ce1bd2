"""Fourier positional encodings.

`fourier_grid_features_2d` is the DETR/XCiT sine encoding: for a grid of h x w tokens, 2*num_feats channels
(num_feats for the row coordinate, then num_feats for the column), each interleaved [sin, cos, sin, cos, ...].
`FourierPositionEncoding2d` projects it with a learned 1x1 convolution to the model width; BiXT adds the result to
the image tokens. The features are a pure function of the grid size, so every resolution works: they are computed for
the grid of the current input (this is both the official "fixed" encoding, whose stored buffer equals this function at
the training grid, and the "adaptive" one of the fine-tuned 384 models).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def fourier_grid_features_2d(
    height: int,
    width: int,
    *,
    num_feats: int = 32,
    temperature: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sine features of a height x width grid: (2*num_feats, height, width), row part first."""
    eps, scale = 1e-6, 2 * math.pi
    # Coordinates 1..size, normalised so the last one is ~2*pi.
    y = torch.arange(1, height + 1, device=device, dtype=dtype)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, device=device, dtype=dtype)[None, :].expand(height, width)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    i = torch.arange(num_feats, device=device, dtype=dtype)
    freqs = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_feats)  # (num_feats,)

    def encode(coord: torch.Tensor) -> torch.Tensor:
        v = coord[..., None] / freqs  # (height, width, num_feats)
        return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), dim=-1).flatten(-2)  # interleaved sin/cos

    return torch.cat((encode(y), encode(x)), dim=-1).permute(2, 0, 1)


# torch.fx records the features as one call on the grid size (computed when the traced graph runs): tracing through
# would need the size as a Python number
torch.fx.wrap("fourier_grid_features_2d")


class FourierPositionEncoding2d(nn.Module):
    """Learned projection of 2-D Fourier features. forward(h, w) -> (1, h*w, dim), rows outer, columns inner."""

    def __init__(self, dim: int, *, num_feats: int = 32, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.proj = nn.Conv2d(2 * num_feats, dim, kernel_size=1)

    def forward(self, height: int, width: int) -> torch.Tensor:
        feats = fourier_grid_features_2d(
            height,
            width,
            num_feats=self.num_feats,
            temperature=self.temperature,
            device=self.proj.weight.device,
            dtype=self.proj.weight.dtype,
        )
        return self.proj(feats[None]).flatten(2).transpose(1, 2)


def sinusoidal_features_1d(
    positions: torch.Tensor, *, num_feats: int = 64, temperature: float = 10000.0, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Transformer sine features of integer positions: (...,) -> (..., num_feats), [sin | cos] halves.

    Frequencies are geometric (1 .. 1/temperature), so nearby and distant positions are both told apart, and a
    position's features do not depend on the sequence length (appending padding leaves them unchanged).
    """
    if num_feats % 2:
        raise ValueError(f"num_feats must be even (sin and cos halves), got {num_feats}")
    dtype = dtype or torch.get_default_dtype()
    i = torch.arange(num_feats // 2, device=positions.device, dtype=dtype)
    angles = positions.to(dtype)[..., None] / temperature ** (2 * i / num_feats)  # (..., num_feats/2)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def fourier_features(coords: torch.Tensor, *, num_bands: int, max_freq: float) -> torch.Tensor:
    """Perceiver-style Fourier features of continuous coordinates in [-1, 1].

    coords: (..., k) -> (..., k * (2 * num_bands + 1)): per axis [sin(pi f x) for f, cos(pi f x) for f, x], with
    num_bands frequencies f spaced linearly from 1 to max_freq / 2 (max_freq = the number of samples the
    highest band resolves across [-1, 1], i.e. its Nyquist rate).
    """
    if num_bands < 1 or max_freq < 2:
        raise ValueError(f"need num_bands >= 1 and max_freq >= 2, got {num_bands} and {max_freq}")
    freqs = torch.linspace(1.0, max_freq / 2, num_bands, device=coords.device, dtype=coords.dtype)
    angles = torch.pi * coords[..., None] * freqs  # (..., k, num_bands)
    feats = torch.cat((angles.sin(), angles.cos(), coords[..., None]), dim=-1)  # (..., k, 2*num_bands + 1)
    return feats.flatten(-2)


def grid_coordinates(
    shape: tuple[int, ...], *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Coordinates of every cell of an N-D grid, each axis spanning [-1, 1]: (prod(shape), len(shape)), row-major."""
    axes = [torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype) for size in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))
