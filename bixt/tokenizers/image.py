"""Image tokenizers: (overlapping) patch embeddings or a convolutional stem, plus the 2-D Fourier position encoding.

| kind       | layer                                       | stride | tokens at 224 |
|------------|---------------------------------------------|--------|---------------|
| patch16    | Conv 16x16, stride 16                       | 16     | 196           |
| patch16_s8 | Conv 16x16, stride 8, padding 4 (overlap)   | 8      | 784           |
| patch16_s4 | Conv 16x16, stride 4, padding 6 (overlap)   | 4      | 3136          |
| conv16/8/4 | 4/3/2 x (Conv 3x3 s2 + BatchNorm), GELU between stages (XCiT stem) | 16/8/4 | 196/784/3136 |

Any input whose height and width are divisible by the stride is accepted.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Literal, get_args

import torch
from torch import nn

from bixt.layers.pos_embed import FourierPositionEncoding2d
from bixt.tokenizers.checks import check_float_input
from bixt.tokenizers.output import TokenizerOutput

ImageTokenizerKind = Literal["patch16", "patch16_s8", "patch16_s4", "conv16", "conv8", "conv4"]
IMAGE_TOKENIZER_STRIDES: dict[str, int] = {
    "patch16": 16,
    "patch16_s8": 8,
    "patch16_s4": 4,
    "conv16": 16,
    "conv8": 8,
    "conv4": 4,
}
IMAGE_TOKENIZERS: tuple[str, ...] = get_args(ImageTokenizerKind)

# stride -> padding for a 16x16 kernel so that the grid is exactly (H / stride, W / stride)
_PATCH16_PADDING = {16: 0, 8: 4, 4: 6}


class PatchEmbed(nn.Module):
    """16x16 patches at stride 16, 8 or 4. x: (b, c, H, W) -> (b, dim, H/stride, W/stride). No normalisation."""

    def __init__(self, in_chans: int, dim: int, *, stride: int = 16) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=16, stride=stride, padding=_PATCH16_PADDING[stride])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ConvStem(nn.Module):
    """XCiT-style stem: stride-2 Conv3x3 + BatchNorm stages, GELU between stages; widths end at dim.

    stride 16: in -> dim/8 -> dim/4 -> dim/2 -> dim;  stride 8: in -> dim/4 -> dim/2 -> dim;
    stride 4: in -> dim/2 -> dim.
    """

    def __init__(self, in_chans: int, dim: int, *, stride: int = 16) -> None:
        super().__init__()
        num_stages = {16: 4, 8: 3, 4: 2}[stride]
        self.stride = stride
        widths = [in_chans] + [dim // 2**k for k in range(num_stages - 1, -1, -1)]
        self.stages = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),
                    norm=nn.BatchNorm2d(c_out),
                )
            )
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.act(x))
        return x


def check_image_batch(
    x: torch.Tensor, weight: torch.Tensor, in_chans: int, stride: int, check_finite: bool = False
) -> None:
    """Raise TypeError/ValueError unless x is a (b, in_chans, H, W) float batch of ``weight``'s dtype (the first
    layer's) with H and W positive multiples of `stride`; `check_finite`: also unless every value is finite."""
    check_float_input(x, weight, "images")
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (batch, {in_chans}, height, width), got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    height, width = x.shape[-2:]
    if height % stride or width % stride or height == 0 or width == 0:
        raise ValueError(
            f"image height and width must be positive multiples of the tokenizer stride {stride}, got {height}x{width}"
        )
    if check_finite and not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")


# torch.fx traces the check as one opaque call (run on real tensors later) instead of branching on traced shapes
torch.fx.wrap("check_image_batch")


def tokenizer_stride(kind: str) -> int:
    """Downsampling factor of the image tokenizer `kind`; ValueError for an unknown kind."""
    if kind not in IMAGE_TOKENIZER_STRIDES:
        raise ValueError(f"image tokenizer must be one of {IMAGE_TOKENIZERS}, got {kind!r}")
    return IMAGE_TOKENIZER_STRIDES[kind]


def _build_patch_embed(kind: str, in_chans: int, dim: int) -> PatchEmbed | ConvStem:
    stride = tokenizer_stride(kind)
    return (PatchEmbed if kind.startswith("patch16") else ConvStem)(in_chans, dim, stride=stride)


class ImageTokenizer(nn.Module):
    """Image -> tokens with the projected Fourier position encoding added.

    x: (b, in_chans, H, W) with H and W divisible by `stride` -> `TokenizerOutput` with tokens
    (b, (H/stride)*(W/stride), dim), row-major, and no mask (every token is real).
    """

    def __init__(self, *, kind: ImageTokenizerKind, in_chans: int, dim: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.patch_embed = _build_patch_embed(kind, in_chans, dim)
        self.pos_embed = FourierPositionEncoding2d(dim)

    @property
    def stride(self) -> int:
        return self.patch_embed.stride

    def forward(self, x: torch.Tensor, check_finite: bool = False) -> TokenizerOutput:
        """`check_finite`: also raise ValueError if x holds NaN or infinite values (costs one pass over x)."""
        check_image_batch(x, next(self.parameters()), self.in_chans, self.stride, check_finite)
        feats = self.patch_embed(x)  # (b, dim, h, w)
        tokens = feats.flatten(2).transpose(1, 2)  # (b, h*w, dim)
        # two indices, not *: FX cannot unpack
        return TokenizerOutput(tokens=tokens + self.pos_embed(feats.shape[-2], feats.shape[-1]))
