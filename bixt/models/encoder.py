"""The modality-agnostic BiXT encoder: learned latents and a stack of BiXT layers over given tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bixt.layers.attention_math import AttentionMaps
from bixt.layers.blocks import BiXTLayer, CrossBlock, SelfAttentionBlock
from bixt.layers.drop import drop_path_schedule
from bixt.layers.init import init_latents_
from bixt.value_checks import can_check_values


@dataclass
class EncoderOutput:
    """latents: (b, m, dim); tokens: (b, n, dim) as last updated (a one-sided last layer leaves them unchanged)."""

    latents: torch.Tensor
    tokens: torch.Tensor


@dataclass
class Intermediates:
    """Per-layer outputs of the encoder: ``latents[i]`` / ``tokens[i]`` after layer i; attention maps if asked."""

    latents: list[torch.Tensor] = field(default_factory=list)
    tokens: list[torch.Tensor] = field(default_factory=list)
    attention: list[AttentionMaps] = field(default_factory=list)


def take_indices(num_layers: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """timm's layer selection: None = every layer, n = the last n, or explicit indices (negative count from the end).

    Returns the indices made non-negative, in the order given, and the largest of them."""
    if indices is None:
        take = list(range(num_layers))
    elif isinstance(indices, int):
        if not 1 <= indices <= num_layers:
            raise ValueError(f"asked for the last {indices} of {num_layers} layers")
        take = list(range(num_layers - indices, num_layers))
    else:
        take = [i + num_layers if i < 0 else i for i in indices]
        bad = [i for i, t in zip(indices, take, strict=True) if not 0 <= t < num_layers]
        if bad or not take:
            raise ValueError(f"layer indices {list(indices)} out of range for {num_layers} layers")
    return take, max(take)


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Row-major tokens (b, height * width, d) -> feature map (b, d, height, width)."""
    return tokens.unflatten(1, (height, width)).permute(0, 3, 1, 2)


def check_token_mask(token_mask: torch.Tensor | None, tokens: torch.Tensor) -> None:
    """Raise ValueError unless the mask is a (b, n) bool tensor leaving every sample at least one real token (the
    latter a value check, `bixt.value_checks`)."""
    if token_mask is None:
        return
    if token_mask.dtype != torch.bool or token_mask.shape != tokens.shape[:2]:
        raise ValueError(
            f"token_mask must be a bool tensor of shape {tuple(tokens.shape[:2])} (True = real token), "
            f"got {token_mask.dtype} {tuple(token_mask.shape)}"
        )
    if not can_check_values(token_mask):
        return
    empty = (~token_mask.any(dim=1)).nonzero().flatten()
    if empty.numel():
        raise ValueError(f"samples {empty.tolist()} have no real token (all padding); drop them from the batch")


# One step of an encoder: (latents or None, tokens, token_mask, return_maps) -> (latents or None, tokens, maps or None)
EncoderStep = Callable[
    [torch.Tensor | None, torch.Tensor, torch.Tensor | None, bool],
    tuple[torch.Tensor | None, torch.Tensor, AttentionMaps | None],
]


def run_steps(
    steps: Iterable[EncoderStep],
    latents: torch.Tensor | None,
    tokens: torch.Tensor,
    token_mask: torch.Tensor | None,
    *,
    checkpointing: bool = False,
    intermediates: Intermediates | None = None,
    return_maps: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The loop every encoder runs (BiXT's layers, the Transformer's blocks, the Perceiver's repeats).

    latents: (b, m, d), or None for an encoder without latents; tokens: (b, n, d); token_mask: (b, n) bool or None.
    `checkpointing`: recompute each step in the backward pass (not while collecting `intermediates`, which keep
    every step's outputs anyway). `intermediates`: each step's latents (if any), tokens and maps are appended.
    Returns the final latents and tokens.
    """
    check_token_mask(token_mask, tokens)
    for step in steps:
        if checkpointing and intermediates is None:
            latents, tokens, _ = checkpoint(step, latents, tokens, token_mask, False, use_reentrant=False)
            continue
        latents, tokens, maps = step(latents, tokens, token_mask, return_maps)
        if intermediates is not None:
            if latents is not None:
                intermediates.latents.append(latents)
            intermediates.tokens.append(tokens)
            if maps is not None:
                intermediates.attention.append(maps)
    return latents, tokens


class BiXTEncoder(nn.Module):
    """Latents (1, m, dim) and `depth` BiXT layers; all bi-directional except, optionally, a one-sided last one.

    tokens: (b, n, dim); token_mask: (b, n) bool, True = real token, or None.
    `two_way_block` builds the layers that update both streams (default: BiXT's bi-directional `CrossBlock`; the
    sequential cross-attention baseline passes its own block with the same constructor and call signature).
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        num_latents: int,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path_rate: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
        one_sided_last: bool = True,
        two_way_block: Callable[..., nn.Module] = CrossBlock,
    ) -> None:
        super().__init__()
        self.one_sided_last = one_sided_last
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
        self.layers = nn.ModuleList(
            BiXTLayer(
                CrossBlock(dim, dim, bidirectional=False, drop_path=rate, **common)
                if one_sided_last and i == depth - 1
                else two_way_block(dim, dim, drop_path=rate, **common),
                SelfAttentionBlock(dim, drop_path=rate, **common),
            )
            for i, rate in enumerate(rates)
        )

    def drop_one_sided_layer(self) -> None:
        """Remove the one-sided last layer, leaving only bi-directional layers (for dense prediction, SPEC 1.3)."""
        if not self.one_sided_last:
            raise ValueError("this encoder has no one-sided last layer to drop")
        del self.layers[-1]
        self.one_sided_last = False

    def layer_names(self) -> list[str]:
        """Module name of each layer, in order (one entry per layer the encoder runs)."""
        return [f"layers.{i}" for i in range(len(self.layers))]

    def block_patterns(self) -> list[tuple[str, tuple[int, ...] | None]]:
        """timm `group_matcher` entries that give each layer's parameters the layer's index."""
        return [(r"^encoder\.layers\.(\d+)\.", None)]

    def keep_layers(self, count: int) -> None:
        """Delete every layer after the first `count` (a shorter backbone: features up to a chosen layer)."""
        if not 1 <= count <= len(self.layers):
            raise ValueError(f"can keep 1 to {len(self.layers)} layers, got {count}")
        if count < len(self.layers):
            del self.layers[count:]
            self.one_sided_last = False  # the one-sided layer, if any, was the last one

    def forward(
        self,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        *,
        intermediates: Intermediates | None = None,
        return_maps: bool = False,
        num_layers: int | None = None,
    ) -> EncoderOutput:
        """Run every layer (or only the first `num_layers`); if `intermediates` is given, append each layer's outputs
        (and maps) to it."""
        latents, tokens = run_steps(
            self.layers[:num_layers],
            self.latents.expand(tokens.shape[0], -1, -1),
            tokens,
            token_mask,
            checkpointing=self.grad_checkpointing and self.training,
            intermediates=intermediates,
            return_maps=return_maps,
        )
        return EncoderOutput(latents, tokens)
