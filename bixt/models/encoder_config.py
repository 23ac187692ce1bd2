"""The config fields every model family shares, and the one place they become encoder arguments.

Each family's config (`BiXTConfig`, `PointEncoderConfig`, `SequenceConfig`, `SegmentationConfig`, `ViTConfig`)
subclasses `EncoderConfig`, re-declaring only the defaults it changes (a re-declared field keeps its place in the
field order), and adds its own fields. `encoder_args` maps the config's names to the encoders' keyword arguments
(``qkv_bias`` -> ``bias``, ``attn_drop_rate`` -> ``attn_drop``, ``drop_rate`` -> ``drop``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bixt.models.config_checks import check_common


@dataclass
class EncoderConfig:
    """Width, depth and regularisation of an encoder. Defaults: BiXT-Ti's."""

    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0  # stochastic depth, linear over layers, same for cross- and self-attention blocks
    attn_drop_rate: float = 0.0
    drop_rate: float = 0.0  # dropout after attention projections, in MLPs and before the classifier
    qkv_bias: bool = True

    def __post_init__(self) -> None:
        check_common(self)

    def encoder_args(self) -> dict[str, Any]:
        """Keyword arguments for `BiXTEncoder`, `TransformerEncoder` or `IterativeEncoder` from these fields (plus
        ``layer_scale_init`` for the families that have that field); each caller adds what is its own (latents,
        whether the last layer is one-sided)."""
        args = dict(
            dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
            attn_drop=self.attn_drop_rate,
            drop=self.drop_rate,
        )
        if hasattr(self, "layer_scale_init"):
            args["layer_scale_init"] = self.layer_scale_init
        return args
