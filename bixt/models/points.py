"""BiXT for point clouds: shape classification (ModelNet40-style) and part segmentation (ShapeNetPart-style).

points (b, p, coord_dims + in_features) -> point tokenizer -> tokens -> BiXTEncoder -> head

- `PointClassifier`: naive (one token per point) or grouped (FPS + kNN + point MLP) tokens; logits from the mean of
  the latents, so the output does not depend on the order of the points.
- `PartSegmenter`: one token per point, all layers bi-directional (the dense d13 recipe: no one-sided last layer,
  SPEC 1.3), a per-point classifier conditioned on the object category's embedding.

Ragged batches: pad the clouds and pass ``mask`` (b, p), True = real point (see the collate helper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from bixt.heads import ClassificationHead
from bixt.heads_dense import PartSegmentationHead
from bixt.layers.init import init_weights_jax
from bixt.models.config_checks import check_positive
from bixt.models.encoder import BiXTEncoder, EncoderOutput, Intermediates
from bixt.models.encoder_config import EncoderConfig
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin
from bixt.models.surface import EncoderModelMixin
from bixt.tokenizers.points import GroupedPointTokenizer, NaivePointTokenizer

PointTokenizerKind = Literal["naive", "grouped"]
POINT_TOKENIZERS: tuple[str, ...] = get_args(PointTokenizerKind)


@dataclass
class PointEncoderConfig(EncoderConfig):
    """Fields shared by the point models: input layout, tokenizer features and the BiXT encoder."""

    num_points: int = 512  # nominal cloud size (example input, cost counting); any size works
    coord_dims: int = 3
    in_features: int = 0  # per-point features after the coordinates
    embed_dim: int = 128
    depth: int = 6
    num_heads: int = 4
    num_latents: int = 32
    num_bands: int = 16  # Fourier bands per coordinate
    max_freq: float = 64.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(num_points=self.num_points, coord_dims=self.coord_dims, num_bands=self.num_bands)
        if self.in_features < 0:
            raise ValueError(f"in_features must be >= 0, got {self.in_features}")

    @property
    def num_channels(self) -> int:
        return self.coord_dims + self.in_features


@dataclass
class PointClassifierConfig(PointEncoderConfig):
    """Point-cloud classification. Defaults: 40 classes (ModelNet40), grouped tokens (64 groups of 32 points)."""

    num_classes: int = 40
    tokenizer: PointTokenizerKind = "grouped"
    num_groups: int = 64  # grouped only
    group_size: int = 32  # grouped only
    local_scale: float = 1.0  # grouped only: factor on a group's centred coordinates before the point MLP

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(num_groups=self.num_groups, group_size=self.group_size)
        if self.tokenizer not in POINT_TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {POINT_TOKENIZERS}, got {self.tokenizer!r}")


@dataclass
class PartSegConfig(PointEncoderConfig):
    """Per-point part segmentation. Defaults: 1024 points, 50 parts in 16 categories (ShapeNetPart)."""

    num_points: int = 1024
    num_classes: int = 50  # part labels over all categories
    num_categories: int = 16  # 0 = no category conditioning
    category_dim: int = 64
    head_hidden_dim: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            num_classes=self.num_classes, category_dim=self.category_dim, head_hidden_dim=self.head_hidden_dim
        )
        if self.num_categories < 0:
            raise ValueError(f"num_categories must be >= 0 (0 = unconditioned), got {self.num_categories}")


def _build_encoder(config: PointEncoderConfig, *, one_sided_last: bool) -> BiXTEncoder:
    return BiXTEncoder(num_latents=config.num_latents, one_sided_last=one_sided_last, **config.encoder_args())


def _example_points(config: PointEncoderConfig, batch_size: int, device: torch.device) -> torch.Tensor:
    """Uniform random points in [-1, 1]^coord_dims (plus standard-normal features): (b, num_points, channels)."""
    coords = torch.rand(batch_size, config.num_points, config.coord_dims, device=device) * 2 - 1
    feats = torch.randn(batch_size, config.num_points, config.in_features, device=device)
    return torch.cat((coords, feats), dim=-1)


@register_architecture
class PointClassifier(EncoderModelMixin, PretrainedMixin, nn.Module):
    """forward(points, mask=None): (b, p, coord_dims + in_features) float, mask (b, p) bool -> logits (b, classes)."""

    config_class = PointClassifierConfig
    inputs = ("points", "mask")  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: PointClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PointClassifierConfig()
        common = dict(
            dim=config.embed_dim,
            coord_dims=config.coord_dims,
            in_features=config.in_features,
            num_bands=config.num_bands,
            max_freq=config.max_freq,
        )
        if config.tokenizer == "grouped":
            self.tokenizer = GroupedPointTokenizer(
                num_groups=config.num_groups,
                group_size=config.group_size,
                local_scale=config.local_scale,
                **common,
            )
        else:
            self.tokenizer = NaivePointTokenizer(**common)
        self.encoder = _build_encoder(config, one_sided_last=True)
        self.head = ClassificationHead(config.embed_dim, config.num_classes, drop=config.drop_rate)
        init_weights_jax(self)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        return _example_points(self.config, batch_size, self.head.norm.weight.device)

    def forward_features(
        self, points: torch.Tensor, mask: torch.Tensor | None = None, *, intermediates: Intermediates | None = None
    ) -> EncoderOutput:
        """points: (b, p, c) -> latents (b, m, d) and tokens (b, n, d) (n = p naive, num_groups grouped)."""
        tok = self.tokenizer(points, mask)
        return self.encoder(tok.tokens, tok.mask, intermediates=intermediates)

    def forward_head(self, features: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        return self.head(features.latents, pre_logits=pre_logits)

    def forward(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(points, mask))


@dataclass
class PartSegFeatures:
    """latents: (b, m, d); tokens: (b, p, d), one per point; category: (b,) int64 or None."""

    latents: torch.Tensor
    tokens: torch.Tensor
    category: torch.Tensor | None = None


@register_architecture
class PartSegmenter(EncoderModelMixin, PretrainedMixin, nn.Module):
    """forward(points, category=None, mask=None): points (b, p, coord_dims + in_features) float, category (b,) int64
    (required when num_categories > 0), mask (b, p) bool -> per-point part logits (b, p, num_classes)."""

    config_class = PartSegConfig
    inputs = ("points", "category", "mask")  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: PartSegConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PartSegConfig()
        self.tokenizer = NaivePointTokenizer(
            dim=config.embed_dim,
            coord_dims=config.coord_dims,
            in_features=config.in_features,
            num_bands=config.num_bands,
            max_freq=config.max_freq,
        )
        self.encoder = _build_encoder(config, one_sided_last=False)
        self.head = PartSegmentationHead(
            config.embed_dim,
            config.num_classes,
            num_categories=config.num_categories,
            category_dim=config.category_dim,
            hidden_dim=config.head_hidden_dim,
        )
        init_weights_jax(self)

    def example_input(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        points = _example_points(self.config, batch_size, self.head.norm.weight.device)
        if not self.config.num_categories:
            return (points,)
        return points, torch.randint(0, self.config.num_categories, (batch_size,), device=points.device)

    def forward_features(
        self,
        points: torch.Tensor,
        category: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        intermediates: Intermediates | None = None,
    ) -> PartSegFeatures:
        # fail before the encoder runs; the head checks the values (one host synchronisation per forward, not two)
        self.head.check_category(category, points.shape[0], values=False)
        tok = self.tokenizer(points, mask)
        out = self.encoder(tok.tokens, tok.mask, intermediates=intermediates)
        return PartSegFeatures(latents=out.latents, tokens=out.tokens, category=category)

    def forward_head(self, features: PartSegFeatures, pre_logits: bool = False) -> torch.Tensor:
        """Per-point part logits (b, p, num_classes), or the head's hidden features with ``pre_logits=True``."""
        return self.head(features.tokens, features.latents, features.category, pre_logits=pre_logits)

    def forward(
        self, points: torch.Tensor, category: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(points, category, mask))
