"""Building blocks of BiXT, one concept per file."""

from bixt.layers.attention import BiCrossAttention, OneSidedCrossAttention, SelfAttention
from bixt.layers.attention_math import AttentionMaps
from bixt.layers.attention_paths import attention_path, get_attention_path, resolved_attention_path, set_attention_path
from bixt.layers.blocks import BiXTLayer, CrossBlock, SelfAttentionBlock
from bixt.layers.drop import DropPath, LayerScale
from bixt.layers.mlp import Mlp
from bixt.layers.pos_embed import FourierPositionEncoding2d, fourier_grid_features_2d

__all__ = [
    "AttentionMaps",
    "BiCrossAttention",
    "BiXTLayer",
    "CrossBlock",
    "DropPath",
    "FourierPositionEncoding2d",
    "LayerScale",
    "Mlp",
    "OneSidedCrossAttention",
    "SelfAttention",
    "SelfAttentionBlock",
    "attention_path",
    "fourier_grid_features_2d",
    "get_attention_path",
    "resolved_attention_path",
    "set_attention_path",
]
