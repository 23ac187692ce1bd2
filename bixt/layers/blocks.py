"""Pre-norm residual blocks and one BiXT layer (cross-attention block, then latent self-attention block)."""

from __future__ import annotations

import torch
from torch import nn

from bixt.layers.attention import BiCrossAttention, OneSidedCrossAttention, SelfAttention
from bixt.layers.attention_math import AttentionMaps
from bixt.layers.drop import DropPath, layer_scale_or_identity
from bixt.layers.mlp import Mlp, norm_then_mlp

LAYER_NORM_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


class SelfAttentionBlock(nn.Module):
    """x <- x + SA(LN(x)); x <- x + MLP(LN(x)), each branch with LayerScale and DropPath. x: (b, l, dim).

    BiXT's latent self-attention (over its m latents) and the Transformer baseline's token block (over n tokens)."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads=num_heads, bias=bias, attn_drop=attn_drop, proj_drop=drop)
        self.ls1 = layer_scale_or_identity(dim, layer_scale_init)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.ls2 = layer_scale_or_identity(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(x, key_mask, norm=self.norm1)))
        return x + self.drop_path(self.ls2(norm_then_mlp(x, self.norm2, self.mlp)))


class CrossBlock(nn.Module):
    """Cross-attention between latents and tokens, then an MLP on each stream that was updated.

    Bi-directional (default): both streams are updated. One-sided: only the latents; the tokens are still normalised
    to form keys and values, and returned unchanged.
    """

    def __init__(
        self,
        dim_latent: int,
        dim_token: int,
        *,
        num_heads: int,
        bidirectional: bool = True,
        dim_attn: int | None = None,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        attention = BiCrossAttention if bidirectional else OneSidedCrossAttention
        self.norm1_latents = layer_norm(dim_latent)
        self.norm1_tokens = layer_norm(dim_token)
        self.attn = attention(
            dim_latent,
            dim_token,
            num_heads=num_heads,
            dim_attn=dim_attn,
            bias=bias,
            attn_drop=attn_drop,
            proj_drop=drop,
        )
        self.ls1_latents = layer_scale_or_identity(dim_latent, layer_scale_init)
        self.norm2_latents = layer_norm(dim_latent)
        self.mlp_latents = Mlp(dim_latent, int(dim_latent * mlp_ratio), drop=drop)
        self.ls2_latents = layer_scale_or_identity(dim_latent, layer_scale_init)
        if bidirectional:
            self.ls1_tokens = layer_scale_or_identity(dim_token, layer_scale_init)
            self.norm2_tokens = layer_norm(dim_token)
            self.mlp_tokens = Mlp(dim_token, int(dim_token * mlp_ratio), drop=drop)
            self.ls2_tokens = layer_scale_or_identity(dim_token, layer_scale_init)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        latents: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        return_maps: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, AttentionMaps | None]:
        """latents: (b, m, dim_latent); tokens: (b, n, dim_token); token_mask: (b, n) bool, True = real token."""
        # the tokens go in raw with their norm, so that the memory mode can drop its output (bixt.layers.norm_linear)
        lat_n, norm = self.norm1_latents(latents), self.norm1_tokens
        if self.bidirectional:
            d_lat, d_tok, maps = self.attn(lat_n, tokens, token_mask, return_maps, token_norm=norm)
        else:
            d_lat, maps = self.attn(lat_n, tokens, token_mask, return_maps, token_norm=norm)
        latents = latents + self.drop_path(self.ls1_latents(d_lat))
        latent_mlp = norm_then_mlp(latents, self.norm2_latents, self.mlp_latents)
        latents = latents + self.drop_path(self.ls2_latents(latent_mlp))
        if self.bidirectional:
            tokens = tokens + self.drop_path(self.ls1_tokens(d_tok))
            tokens = tokens + self.drop_path(self.ls2_tokens(norm_then_mlp(tokens, self.norm2_tokens, self.mlp_tokens)))
        return latents, tokens, maps


class BiXTLayer(nn.Module):
    """One BiXT layer: cross-attention block (latents <-> tokens), then latent self-attention block."""

    def __init__(self, cross_block: CrossBlock, latent_block: SelfAttentionBlock) -> None:
        super().__init__()
        self.cross_block = cross_block
        self.latent_block = latent_block

    def forward(
        self,
        latents: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        return_maps: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, AttentionMaps | None]:
        latents, tokens, maps = self.cross_block(latents, tokens, token_mask, return_maps)
        return self.latent_block(latents), tokens, maps
