"""The full-Transformer baseline: every token attends to every token (cost quadratic in n).

`TransformerEncoder` is a stack of pre-norm self-attention blocks, the same `SelfAttentionBlock` that BiXT applies to
its latents (here over the tokens), so the attention math and its fused/explicit paths are shared with BiXT. There is
no final norm inside: the heads normalise what they pool, as BiXT's do.

`VisionTransformer` is the DeiT/ViT image classifier built from it: 16x16 patches, a class token, learned position
embeddings, the class token's final state normalised and classified. With the defaults it is DeiT-Ti
(5,717,416 parameters with 1000 classes; 1.26 GFLOPs at 224 in the paper's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from bixt.heads import ClassificationHead
from bixt.layers.blocks import SelfAttentionBlock
from bixt.layers.drop import drop_path_schedule
from bixt.layers.init import init_weights_jax
from bixt.models.encoder import EncoderOutput, Intermediates, run_steps
from bixt.models.encoder_config import EncoderConfig
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin
from bixt.models.surface import EncoderModelMixin
from bixt.tokenizers.checks import check_float_input
from bixt.tokenizers.image import PatchEmbed


def _token_step(
    block: nn.Module, latents: None, tokens: torch.Tensor, token_mask: torch.Tensor | None, return_maps: bool
) -> tuple[None, torch.Tensor, None]:
    # a self-attention block as an encoder step (`run_steps`): no latents, no maps
    return None, block(tokens, token_mask), None


class TransformerEncoder(nn.Module):
    """depth x (x <- x + SA(LN(x)); x <- x + MLP(LN(x))). tokens: (b, n, dim) -> (b, n, dim).

    token_mask: (b, n) bool, True = real token: padded tokens are never attended to (their own outputs are
    meaningless and must be ignored by the head).
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        layer_scale_init: float | None = None,
        drop_path_rate: float = 0.0,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        rates = drop_path_schedule(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(
                dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                bias=bias,
                layer_scale_init=layer_scale_init,
                drop_path=rate,
                attn_drop=attn_drop,
                drop=drop,
            )
            for rate in rates
        )

    def forward(
        self,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        *,
        intermediates: Intermediates | None = None,
    ) -> torch.Tensor:
        _, tokens = run_steps(
            (partial(_token_step, block) for block in self.blocks),
            None,
            tokens,
            token_mask,
            checkpointing=self.grad_checkpointing and self.training,
            intermediates=intermediates,
        )
        return tokens


PATCH_SIZE = 16


def _split_class_token(tokens: torch.Tensor) -> EncoderOutput:
    """(b, 1 + n, dim) -> EncoderOutput(latents=(b, 1, dim) class token, tokens=(b, n, dim))."""
    return EncoderOutput(latents=tokens[:, :1], tokens=tokens[:, 1:])


@dataclass
class ViTConfig(EncoderConfig):
    """A ViT/DeiT image classifier with 16x16 patches. Defaults: DeiT-Ti (vit_ti_p16)."""

    img_size: int = 224  # nominal resolution: the learned position table's grid; others are interpolated
    in_chans: int = 3
    num_classes: int = 1000
    num_heads: int = 3
    layer_scale_init: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.img_size % PATCH_SIZE:
            raise ValueError(f"img_size must be a multiple of the patch size {PATCH_SIZE}, got {self.img_size}")


@register_architecture
class VisionTransformer(EncoderModelMixin, PretrainedMixin, nn.Module):
    """ViT/DeiT classifier. forward(x): (b, in_chans, H, W), H and W multiples of 16 -> logits (b, num_classes).

    Features follow the latent models' layout: the class token plays the part of a single latent, so
    forward_features returns EncoderOutput(latents=class token (b, 1, dim), tokens=patch tokens (b, n, dim)).
    """

    config_class = ViTConfig
    inputs = ("images",)  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: ViTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ViTConfig()
        dim, grid = config.embed_dim, config.img_size // PATCH_SIZE
        self.patch_embed = PatchEmbed(config.in_chans, dim, stride=PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.encoder = TransformerEncoder(**config.encoder_args())
        # DeiT normalises the class token's final state before the classifier: the head's norm does exactly that
        self.head = ClassificationHead(dim, config.num_classes, drop=config.drop_rate)
        init_weights_jax(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        c = self.config
        return torch.randn(batch_size, c.in_chans, c.img_size, c.img_size, device=self.pos_embed.device)

    def _position_embedding(self, height: int, width: int) -> torch.Tensor:
        """(1, 1 + height*width, dim): the learned table, bicubically resized when the grid differs from training."""
        grid = self.config.img_size // PATCH_SIZE
        if not torch.compiler.is_exporting() and (height, width) == (grid, grid):  # an exported graph takes any grid
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(height, width), mode="bicubic", align_corners=False)
        return torch.cat((cls_pos, patch_pos.flatten(2).transpose(1, 2)), dim=1)

    def _tokenize(self, x: torch.Tensor) -> torch.Tensor:
        check_float_input(x, self.cls_token, "images")
        if x.ndim != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"expected images (batch, {self.config.in_chans}, height, width), got {tuple(x.shape)}")
        if x.shape[-2] % PATCH_SIZE or x.shape[-1] % PATCH_SIZE or 0 in x.shape[-2:]:
            raise ValueError(f"image height and width must be positive multiples of {PATCH_SIZE}, got {x.shape[-2:]}")
        feats = self.patch_embed(x)  # (b, dim, h, w)
        tokens = feats.flatten(2).transpose(1, 2)  # (b, h*w, dim)
        tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
        return tokens + self._position_embedding(*feats.shape[-2:])

    def forward_features(self, x: torch.Tensor, *, intermediates: Intermediates | None = None) -> EncoderOutput:
        """x: (b, c, H, W) -> class token (b, 1, dim) as `latents` and patch tokens (b, n, dim) as `tokens`; with
        `intermediates`, every block's class token (``latents``) and patch tokens (``tokens``) are appended to it."""
        collected = None if intermediates is None else Intermediates()
        features = _split_class_token(self.encoder(self._tokenize(x), intermediates=collected))
        if intermediates is not None:
            for block in map(_split_class_token, collected.tokens):
                intermediates.latents.append(block.latents)
                intermediates.tokens.append(block.tokens)
        return features

    def forward_head(self, features: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        return self.head(features.latents, pre_logits=pre_logits)  # one class token: the head's mean is the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        """The class token and position table are exempt, as in DeiT."""
        return {"cls_token", "pos_embed"}
