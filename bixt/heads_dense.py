"""Dense heads: a prediction per token (segmentation of images, parts of point clouds).

- `LinearSegmentationHead`: the final tokens back on their grid, one linear predictor per token (on the token and
  the global context), upsampled to pixels.
- `FPNSegmentationHead`: a small Semantic-FPN-style decoder over token maps taken from several layers.
- `PartSegmentationHead`: per-point part logits, optionally conditioned on the object category (ShapeNetPart).

The dense heads also read the latents: their mean (layer-normalised) is appended to every token as global context,
as PointNet appends its global feature for segmentation. Beyond the context it adds, this gives the last layer's
latent update a purpose: without it, a dense model's final latent MLP and self-attention would receive no gradient.

Heads with hidden layers initialise themselves (`bixt.heads.HiddenLayerHead`; the FPN decoder its context
projection): the models' 'jax' init zeroes every Linear under ``head``, which is right for a classifier but would
leave a hidden layer dead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from bixt.heads import HiddenLayerHead, check_classes, zero_classifier
from bixt.layers.blocks import layer_norm
from bixt.value_checks import can_check_values


def _tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    h, w = grid
    if tokens.shape[1] != h * w:
        raise ValueError(f"{tokens.shape[1]} tokens do not fill a {h}x{w} grid")
    return rearrange(tokens, "b (h w) d -> b d h w", h=h, w=w)


class GlobalContext(nn.Module):
    """latents: (b, m, dim) -> LayerNorm of their mean, (b, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = layer_norm(dim)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.norm(latents.mean(dim=1))


class LinearSegmentationHead(nn.Module):
    """token_maps[-1]: (b, h*w, dim) row-major, latents (b, m, dim) -> logits (b, num_classes, H, W), bilinearly
    upsampled to out_size. One Linear over [normalised token, global context] per token; ``pre_logits=True`` returns
    those per-token features on their grid, (b, 2 * dim, h, w)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        check_classes(num_classes)
        self.num_classes = num_classes
        self.norm = layer_norm(dim)
        self.context = GlobalContext(dim)
        self.fc = nn.Linear(2 * dim, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = zero_classifier(self.fc, num_classes)
        self.num_classes = num_classes

    def forward(
        self,
        token_maps: list[torch.Tensor],
        latents: torch.Tensor,
        grid: tuple[int, int],
        out_size: tuple[int, int],
        pre_logits: bool = False,
    ) -> torch.Tensor:
        tokens = self.norm(token_maps[-1])
        context = self.context(latents)[:, None].expand_as(tokens)
        features = torch.cat((tokens, context), dim=-1)
        if pre_logits:
            return _tokens_to_map(features, grid)
        logits = _tokens_to_map(self.fc(features), grid)  # (b, num_classes, h, w)
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)


class FPNSegmentationHead(nn.Module):
    """Semantic-FPN-style decoder for a columnar encoder.

    token_maps: `num_levels` maps (b, h*w, dim) from increasingly deep layers, all on the same grid. As in the dense
    protocol for plain ViT/XCiT backbones, level i is resampled to stride 4 * 2**i of the image (shallow = fine), then:
    1x1 lateral convs, a top-down pathway (coarser levels upsampled and added), a 3x3 conv per level, all levels
    upsampled to stride 4 and summed, the projected global context (from latents (b, m, dim)) added everywhere, a 1x1
    classifier, upsampling to out_size. Returns (b, num_classes, H, W); ``pre_logits=True`` returns what the classifier
    reads, (b, fpn_dim, H / 4, W / 4).
    """

    def __init__(self, dim: int, num_classes: int, *, num_levels: int = 4, fpn_dim: int = 64) -> None:
        super().__init__()
        check_classes(num_classes)
        self.num_classes = num_classes
        self.num_levels = num_levels
        self.norms = nn.ModuleList(layer_norm(dim) for _ in range(num_levels))
        self.lateral = nn.ModuleList(nn.Conv2d(dim, fpn_dim, kernel_size=1) for _ in range(num_levels))
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_dim, fpn_dim, kernel_size=3, padding=1) for _ in range(num_levels))
        self.act = nn.GELU()
        self.context = GlobalContext(dim)
        self.context_proj = nn.Linear(dim, fpn_dim)
        self.classifier = nn.Conv2d(fpn_dim, num_classes, kernel_size=1)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.context_proj.weight)
        nn.init.zeros_(self.context_proj.bias)

    def reset(self, num_classes: int) -> None:
        check_classes(num_classes)
        weight = self.classifier.weight
        self.classifier = nn.Conv2d(weight.shape[1], num_classes, kernel_size=1).to(weight.device, weight.dtype)
        self.num_classes = num_classes

    def forward(
        self,
        token_maps: list[torch.Tensor],
        latents: torch.Tensor,
        grid: tuple[int, int],
        out_size: tuple[int, int],
        pre_logits: bool = False,
    ) -> torch.Tensor:
        if len(token_maps) != self.num_levels:
            raise ValueError(f"the FPN decoder expects {self.num_levels} token maps, got {len(token_maps)}")
        sizes = [(max(1, out_size[0] // (4 * 2**i)), max(1, out_size[1] // (4 * 2**i))) for i in range(self.num_levels)]
        levels = []
        for tokens, norm, lateral, size in zip(token_maps, self.norms, self.lateral, sizes, strict=True):
            fmap = F.interpolate(_tokens_to_map(norm(tokens), grid), size=size, mode="bilinear", align_corners=False)
            levels.append(lateral(fmap))
        for i in range(self.num_levels - 1, 0, -1):  # top-down: coarse context into finer levels
            levels[i - 1] = levels[i - 1] + F.interpolate(levels[i], size=sizes[i - 1], mode="nearest")
        fused = sum(
            F.interpolate(self.act(smooth(level)), size=sizes[0], mode="bilinear", align_corners=False)
            for smooth, level in zip(self.smooth, levels, strict=True)
        )
        fused = fused + self.context_proj(self.context(latents))[:, :, None, None]
        if pre_logits:
            return fused
        return F.interpolate(self.classifier(fused), size=out_size, mode="bilinear", align_corners=False)


class PartSegmentationHead(HiddenLayerHead):
    """Per-point part logits. tokens: (b, p, dim); latents: (b, m, dim); category: (b,) int64 object category,
    required iff num_categories > 0 -> logits (b, p, num_parts). Every point's features are [normalised token, global
    context, category embedding], classified by a one-hidden-layer MLP; ``pre_logits=True`` returns its hidden
    features (b, p, hidden_dim).
    """

    def __init__(
        self, dim: int, num_parts: int, *, num_categories: int = 0, category_dim: int = 64, hidden_dim: int = 256
    ) -> None:
        super().__init__()
        check_classes(num_parts)
        self.num_classes = num_parts
        self.num_categories = num_categories
        self.norm = layer_norm(dim)
        self.context = GlobalContext(dim)
        self.category_embed = nn.Embedding(num_categories, category_dim) if num_categories else None
        self.hidden = nn.Linear(2 * dim + (category_dim if num_categories else 0), hidden_dim)
        self.act = nn.GELU()
        self.fc = nn.Linear(hidden_dim, num_parts)

    def check_category(self, category: torch.Tensor | None, batch_size: int, values: bool = True) -> None:
        """Raise TypeError/ValueError unless `category` is what this head needs for a batch of `batch_size`; with
        `values`, also that every index is in range (a value check, `bixt.value_checks`)."""
        if self.category_embed is None:
            if category is not None:
                raise ValueError("this part-segmentation head has no category embedding (num_categories=0)")
            return
        if category is None:
            raise ValueError(f"an object-category index in [0, {self.num_categories}) per sample is required")
        if category.dtype.is_floating_point or category.dtype == torch.bool:
            raise TypeError(f"object categories must be integer indices, got {category.dtype}")
        if category.shape != (batch_size,):
            raise ValueError(f"expected one category per sample, shape ({batch_size},), got {tuple(category.shape)}")
        if not values or not can_check_values(category) or not category.numel():
            return
        if bool(((category < 0) | (category >= self.num_categories)).any()):  # one synchronisation, not two
            raise ValueError(f"object categories must lie in [0, {self.num_categories}), got {category.tolist()}")

    def forward(
        self,
        tokens: torch.Tensor,
        latents: torch.Tensor,
        category: torch.Tensor | None = None,
        pre_logits: bool = False,
    ) -> torch.Tensor:
        self.check_category(category, tokens.shape[0])
        b, p = tokens.shape[:2]
        parts = [self.norm(tokens), self.context(latents)[:, None].expand(b, p, -1)]
        if self.category_embed is not None:
            parts.append(self.category_embed(category)[:, None].expand(b, p, -1))  # (b, p, category_dim)
        hidden = self.act(self.hidden(torch.cat(parts, dim=-1)))
        return hidden if pre_logits else self.fc(hidden)
