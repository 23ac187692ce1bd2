"""The latent-attention baselines of Table 1(a), as image classifiers with BiXT's tokenizer, head and surface.

- `SequentialCrossAttentionNet`: BiXT with each bi-directional cross-attention replaced by two sequential one-way
  cross-attentions (latents <- tokens, then tokens <- latents), 6 input projections instead of 4
  (`bixt.layers.sequential`). The last layer stays one-sided as in BiXT. d12 Ti/16: 1.81 GFLOPs / 9.24M activations.
- `PerceiverNet`: Perceiver-style iterative attention. The tokens are never updated; the latents gather from them
  `depth` times (one-sided cross-attention), each time followed by `self_per_cross` latent self-attention blocks.
  Cross-attention weights can be shared across repeats: ``share_cross="all"`` (SPEC 2.1 dagger) or
  ``"all_but_first"`` (double dagger). Shared blocks are stored once (no duplicate checkpoint keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

import torch
from torch import nn

from bixt.layers.attention_math import AttentionMaps
from bixt.layers.blocks import CrossBlock, SelfAttentionBlock
from bixt.layers.drop import drop_path_schedule
from bixt.layers.init import init_latents_
from bixt.layers.sequential import SequentialCrossBlock
from bixt.models.bixt import BiXT, BiXTConfig
from bixt.models.encoder import EncoderOutput, Intermediates, run_steps
from bixt.models.registry import register_architecture


@register_architecture
class SequentialCrossAttentionNet(BiXT):
    """BiXT's image classifier with sequential instead of bi-directional cross-attention (same config, same surface).

    forward(x): (b, in_chans, H, W) -> logits (b, num_classes).
    """

    config_class = BiXTConfig

    def build_encoder(self, config: BiXTConfig, **options: Any) -> nn.Module:
        return super().build_encoder(config, two_way_block=SequentialCrossBlock, **options)


ShareCross = Literal["none", "all", "all_but_first"]
SHARE_CROSS: tuple[str, ...] = get_args(ShareCross)


@dataclass
class PerceiverConfig(BiXTConfig):
    """BiXT's image fields plus the iterative schedule. `depth` = number of cross-attentions (repeats).

    ``one_sided_last`` must stay True: iterative attention never updates the tokens.
    """

    self_per_cross: int = 5  # latent self-attention blocks after each cross-attention
    share_cross: ShareCross = "none"  # weight sharing of the cross-attentions across repeats

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.self_per_cross, int) or self.self_per_cross < 0:
            raise ValueError(f"self_per_cross must be a non-negative integer, got {self.self_per_cross!r}")
        if self.share_cross not in SHARE_CROSS:
            raise ValueError(f"share_cross must be one of {SHARE_CROSS}, got {self.share_cross!r}")
        if not self.one_sided_last:
            raise ValueError("Perceiver-style attention never updates the tokens; one_sided_last must be True")


class IterativeEncoder(nn.Module):
    """Latents (1, m, dim) that repeatedly gather from fixed tokens.

    Repeat i: latents <- tokens (one-sided `CrossBlock`), then `self_per_cross` `SelfAttentionBlock`s.
    tokens: (b, n, dim); token_mask: (b, n) bool, True = real token. Returns the latents and the unchanged tokens.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        num_latents: int,
        self_per_cross: int,
        share_cross: ShareCross = "none",
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path_rate: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.depth, self.self_per_cross = depth, self_per_cross
        self.grad_checkpointing = False
        self.latents = nn.Parameter(init_latents_(torch.empty(1, num_latents, dim)))
        rates = drop_path_schedule(drop_path_rate, depth)
        common = dict(
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            bias=bias,
            layer_scale_init=layer_scale_init,
            attn_drop=attn_drop,
            drop=drop,
        )
        self.share_cross = share_cross
        self.cross_blocks = nn.ModuleList(
            CrossBlock(dim, dim, bidirectional=False, drop_path=rates[i], **common)
            for i in range(self._num_unique_cross(depth))
        )
        self.latent_blocks = nn.ModuleList(
            SelfAttentionBlock(dim, drop_path=rates[i], **common) for i in range(depth) for _ in range(self_per_cross)
        )

    def _num_unique_cross(self, depth: int) -> int:
        return {"none": depth, "all": 1, "all_but_first": min(depth, 2)}[self.share_cross]

    def layer_names(self) -> list[str]:
        """One entry per repeat: the cross-attention that repeat runs (shared ones appear more than once)."""
        return [f"cross_blocks.{min(i, len(self.cross_blocks) - 1)}" for i in range(self.depth)]

    def block_patterns(self) -> list[tuple[str, tuple[int, ...] | None]]:
        """timm `group_matcher` entries: repeat i = its cross-attention (shared ones count as the first repeat's) and
        its `self_per_cross` latent blocks."""
        latent = [
            (rf"^encoder\.latent_blocks\.{j}\.", (j // self.self_per_cross,)) for j in range(len(self.latent_blocks))
        ]
        return [(r"^encoder\.cross_blocks\.(\d+)\.", None), *latent]

    def keep_layers(self, count: int) -> None:
        """Delete every repeat after the first `count` (its cross-attention, unless shared, and its latent blocks)."""
        if not 1 <= count <= self.depth:
            raise ValueError(f"can keep 1 to {self.depth} repeats, got {count}")
        del self.cross_blocks[self._num_unique_cross(count) :]
        del self.latent_blocks[count * self.self_per_cross :]
        self.depth = count

    def cross_block(self, repeat: int) -> CrossBlock:
        """The cross-attention of `repeat`: its own, the single shared one, or (from repeat 1 on) the second one."""
        return self.cross_blocks[min(repeat, len(self.cross_blocks) - 1)]

    def _repeat(
        self, repeat: int, latents: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor | None, maps: bool
    ) -> tuple[torch.Tensor, torch.Tensor, AttentionMaps | None]:
        """One repeat as an encoder step (`run_steps`): the tokens pass through unchanged."""
        latents, _, attention = self.cross_block(repeat)(latents, tokens, token_mask, maps)
        start = repeat * self.self_per_cross
        for block in self.latent_blocks[start : start + self.self_per_cross]:
            latents = block(latents)
        return latents, tokens, attention

    def forward(
        self,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        *,
        intermediates: Intermediates | None = None,
        return_maps: bool = False,
        num_layers: int | None = None,
    ) -> EncoderOutput:
        """Run every repeat (or only the first `num_layers`), collecting per-repeat outputs into `intermediates`."""
        latents, tokens = run_steps(
            (partial(self._repeat, repeat) for repeat in range(self.depth if num_layers is None else num_layers)),
            self.latents.expand(tokens.shape[0], -1, -1),
            tokens,
            token_mask,
            checkpointing=self.grad_checkpointing and self.training,
            intermediates=intermediates,
            return_maps=return_maps,
        )
        return EncoderOutput(latents, tokens)


@register_architecture
class PerceiverNet(BiXT):
    """Perceiver-style iterative-attention image classifier (BiXT's tokenizer and head, `IterativeEncoder`).

    forward(x): (b, in_chans, H, W) -> logits (b, num_classes).
    """

    config_class = PerceiverConfig

    def build_encoder(self, config: PerceiverConfig, **options: Any) -> nn.Module:
        return IterativeEncoder(
            num_latents=config.num_latents,
            self_per_cross=config.self_per_cross,
            share_cross=config.share_cross,
            **config.encoder_args(),
            **options,
        )

    def drop_one_sided_layer(self) -> PerceiverNet:
        raise ValueError("a Perceiver-style model never updates its tokens; it has no one-sided layer to drop")
