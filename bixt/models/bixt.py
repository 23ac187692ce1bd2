"""BiXT for images: config, model and its timm-style surface.

image -> ImageTokenizer -> tokens (b, n, d) -> BiXTEncoder -> latents (b, m, d), tokens -> ClassificationHead
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bixt.heads import ClassificationHead
from bixt.layers.init import init_weights_jax
from bixt.models.config_checks import check_common
from bixt.models.encoder import BiXTEncoder, EncoderOutput, Intermediates
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin
from bixt.models.surface import EncoderModelMixin
from bixt.tokenizers.image import ImageTokenizer, ImageTokenizerKind, tokenizer_stride


@dataclass
class BiXTConfig:
    """Everything that defines a BiXT image classifier. Defaults are BiXT-Ti/16 (bixt_ti_l64_p16)."""

    img_size: int = 224  # nominal resolution (cost counting, docs); any multiple of the stride runs
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 6
    num_latents: int = 64
    mlp_ratio: float = 4.0
    tokenizer: ImageTokenizerKind = "patch16"
    layer_scale_init: float | None = None  # None = LayerScale off
    drop_path_rate: float = 0.0  # stochastic depth, linear over layers, same for cross- and self-attention blocks
    attn_drop_rate: float = 0.0
    drop_rate: float = 0.0  # dropout after attention projections, in MLPs and before the classifier
    qkv_bias: bool = True
    one_sided_last: bool = True  # the last layer updates latents only (classification); False for dense use

    def __post_init__(self) -> None:
        check_common(self)
        if self.img_size % self.stride:
            raise ValueError(f"img_size ({self.img_size}) must be a multiple of the tokenizer stride ({self.stride})")
        if self.tokenizer.startswith("conv") and self.embed_dim % 8:
            raise ValueError(f"the conv stem needs embed_dim divisible by 8, got {self.embed_dim}")
        if self.layer_scale_init is not None and self.layer_scale_init <= 0:
            raise ValueError(f"layer_scale_init must be positive or None (off), got {self.layer_scale_init}")

    @property
    def stride(self) -> int:
        return tokenizer_stride(self.tokenizer)

    @property
    def num_tokens(self) -> int:
        return (self.img_size // self.stride) ** 2


@register_architecture
class BiXT(EncoderModelMixin, PretrainedMixin, nn.Module):
    """BiXT image classifier.

    forward(x): (b, in_chans, H, W) -> logits (b, num_classes); H, W multiples of the tokenizer stride.
    """

    config_class = BiXTConfig

    def __init__(self, config: BiXTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BiXTConfig()
        self.tokenizer = ImageTokenizer(kind=config.tokenizer, in_chans=config.in_chans, dim=config.embed_dim)
        self.encoder = self.build_encoder(config)
        self.head = ClassificationHead(config.embed_dim, config.num_classes, drop=config.drop_rate)
        init_weights_jax(self)

    def build_encoder(self, config: BiXTConfig, **options: Any) -> nn.Module:
        """The encoder over the image tokens; `options` go to `BiXTEncoder` (baselines that differ only in their
        attention layers override this method, e.g. to pass another ``two_way_block``)."""
        return BiXTEncoder(
            dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            num_latents=config.num_latents,
            mlp_ratio=config.mlp_ratio,
            bias=config.qkv_bias,
            layer_scale_init=config.layer_scale_init,
            drop_path_rate=config.drop_path_rate,
            attn_drop=config.attn_drop_rate,
            drop=config.drop_rate,
            one_sided_last=config.one_sided_last,
            **options,
        )

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A random batch at the nominal resolution: (batch_size, in_chans, img_size, img_size)."""
        c = self.config
        return torch.randn(batch_size, c.in_chans, c.img_size, c.img_size, device=self.head.norm.weight.device)

    def _tokenize(self, x: torch.Tensor, check_finite: bool) -> torch.Tensor:
        if check_finite and not torch.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values")
        return self.tokenizer(x)

    def forward_features(self, x: torch.Tensor, *, check_finite: bool = False) -> EncoderOutput:
        """x: (b, c, H, W) -> latents (b, m, d) and tokens (b, n, d)."""
        return self.encoder(self._tokenize(x, check_finite))

    def forward_head(self, features: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """Logits (b, num_classes), or the pooled, normalised latents (b, d) with ``pre_logits=True``."""
        return self.head(features.latents, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor, *, check_finite: bool = False) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, check_finite=check_finite))

    def forward_intermediates(
        self, x: torch.Tensor, *, return_attention: bool = False
    ) -> tuple[EncoderOutput, Intermediates]:
        """Final features plus every layer's latents and tokens (and attention maps when asked)."""
        intermediates = Intermediates()
        features = self.encoder(self.tokenizer(x), intermediates=intermediates, return_maps=return_attention)
        return features, intermediates

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)

    def drop_one_sided_layer(self) -> BiXT:
        """Remove the one-sided last layer so that the final tokens come from a fully trained layer (d13 -> dense)."""
        self.encoder.drop_one_sided_layer()
        self.config = dataclasses.replace(self.config, depth=self.config.depth - 1, one_sided_last=False)
        return self
