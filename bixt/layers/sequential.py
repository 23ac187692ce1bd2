"""The sequential cross-attention block: BiXT's baseline of two one-way cross-attentions (SPEC 2.1, Table 1a).

Per layer, latents first gather from the tokens (latents <- tokens), then the tokens gather from the updated latents
(tokens <- latents), each direction with its own query, key and value projections: 6 input projections where BiXT's
bi-directional attention needs 4, and two similarity matrices instead of one. Everything else is BiXT's `CrossBlock`:
the same norms (``norm1_latents`` normalises the latents wherever they enter an attention), the same MLPs, LayerScale
and DropPath, so a sequential layer has exactly 2 * (dim_attn * dim + dim_attn) more parameters than a bi-directional
one, the two extra input projections.

Each direction is a `OneSidedCrossAttention` (queries from its first argument, keys/values from its second). In the
token direction the roles swap: its ``r_latents`` projects the tokens (queries) and its ``rv_tokens`` the latents.
"""

from __future__ import annotations

import torch
from torch import nn

from bixt.layers.attention import OneSidedCrossAttention
from bixt.layers.attention_math import AttentionMaps
from bixt.layers.blocks import layer_norm
from bixt.layers.drop import DropPath, layer_scale_or_identity
from bixt.layers.mlp import Mlp, norm_then_mlp


class SequentialCrossBlock(nn.Module):
    """latents <- tokens, then tokens <- updated latents; pre-norm, residual, an MLP on each stream.

    Same constructor and call as `CrossBlock` (it can replace it in `BiXTEncoder` via ``two_way_block``).
    latents: (b, m, dim_latent); tokens: (b, n, dim_token); token_mask: (b, n) bool, True = real token. Padded tokens
    contribute nothing to the latents and receive nothing from them.
    """

    def __init__(
        self,
        dim_latent: int,
        dim_token: int,
        *,
        num_heads: int,
        dim_attn: int | None = None,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        attention = dict(num_heads=num_heads, dim_attn=dim_attn, bias=bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm1_latents = layer_norm(dim_latent)
        self.norm1_tokens = layer_norm(dim_token)
        self.attn_latents = OneSidedCrossAttention(dim_latent, dim_token, **attention)  # latents <- tokens
        self.ls1_latents = layer_scale_or_identity(dim_latent, layer_scale_init)
        self.norm2_latents = layer_norm(dim_latent)
        self.mlp_latents = Mlp(dim_latent, int(dim_latent * mlp_ratio), drop=drop)
        self.ls2_latents = layer_scale_or_identity(dim_latent, layer_scale_init)
        self.attn_tokens = OneSidedCrossAttention(dim_token, dim_latent, **attention)  # tokens <- latents
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
        tok_n = self.norm1_tokens(tokens)
        d_lat, maps_lat = self.attn_latents(self.norm1_latents(latents), tok_n, token_mask, return_maps)
        latents = latents + self.drop_path(self.ls1_latents(d_lat))
        latent_mlp = norm_then_mlp(latents, self.norm2_latents, self.mlp_latents)
        latents = latents + self.drop_path(self.ls2_latents(latent_mlp))
        d_tok, maps_tok = self.attn_tokens(tok_n, self.norm1_latents(latents), None, return_maps)
        if token_mask is not None:
            d_tok = d_tok * token_mask[..., None].to(d_tok.dtype)  # padded tokens receive nothing, as in BiXT
        tokens = tokens + self.drop_path(self.ls1_tokens(d_tok))
        tokens = tokens + self.drop_path(self.ls2_tokens(norm_then_mlp(tokens, self.norm2_tokens, self.mlp_tokens)))
        maps = None
        if return_maps:
            maps = AttentionMaps(maps_lat.latents_to_tokens, maps_tok.latents_to_tokens)  # (b,h,m,n), (b,h,n,m)
        return latents, tokens, maps
