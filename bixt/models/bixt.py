"""BiXT for images: config, model and its timm-style surface.

image -> ImageTokenizer -> tokens (b, n, d) -> BiXTEncoder -> latents (b, m, d), tokens -> ClassificationHead
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bixt.heads import ClassificationHead, HeadPool, check_pool
from bixt.layers.init import init_weights_jax
from bixt.models.encoder import BiXTEncoder, EncoderOutput, Intermediates, take_indices, tokens_to_map
from bixt.models.encoder_config import EncoderConfig
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin
from bixt.models.surface import EncoderModelMixin
from bixt.tokenizers.image import ImageTokenizer, ImageTokenizerKind, tokenizer_stride


@dataclass
class BiXTConfig(EncoderConfig):
    """Everything that defines a BiXT image classifier. Defaults are BiXT-Ti/16 (bixt_ti_l64_p16)."""

    img_size: int = 224  # nominal resolution (cost counting, docs); any multiple of the stride runs
    in_chans: int = 3
    num_classes: int = 1000
    num_latents: int = 64
    tokenizer: ImageTokenizerKind = "patch16"
    layer_scale_init: float | None = None  # None = LayerScale off
    one_sided_last: bool = True  # the last layer updates latents only (classification); False for dense use
    global_pool: HeadPool = "avg"  # the head averages the latents; "" classifies each latent

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.img_size % self.stride:
            raise ValueError(f"img_size ({self.img_size}) must be a multiple of the tokenizer stride ({self.stride})")
        if self.tokenizer.startswith("conv") and self.embed_dim % 8:
            raise ValueError(f"the conv stem needs embed_dim divisible by 8, got {self.embed_dim}")
        if self.layer_scale_init is not None and self.layer_scale_init <= 0:
            raise ValueError(f"layer_scale_init must be positive or None (off), got {self.layer_scale_init}")
        check_pool(self.global_pool)

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
    inputs = ("images",)  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: BiXTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BiXTConfig()
        self.tokenizer = ImageTokenizer(kind=config.tokenizer, in_chans=config.in_chans, dim=config.embed_dim)
        self.encoder = self.build_encoder(config)
        self.head = ClassificationHead(
            config.embed_dim, config.num_classes, drop=config.drop_rate, pool=config.global_pool
        )
        init_weights_jax(self)

    def build_encoder(self, config: BiXTConfig, **options: Any) -> nn.Module:
        """The encoder over the image tokens; `options` go to `BiXTEncoder` (baselines that differ only in their
        attention layers override this method, e.g. to pass another ``two_way_block``)."""
        return BiXTEncoder(
            num_latents=config.num_latents, one_sided_last=config.one_sided_last, **config.encoder_args(), **options
        )

    @property
    def num_features(self) -> int:
        """Width of the features: of every latent and token, and of the pooled pre-logits."""
        return self.config.embed_dim

    head_hidden_size = num_features

    @property
    def in_chans(self) -> int:
        return self.config.in_chans

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """One entry per layer (timm's format): the token map after that layer, embed_dim channels at the stride."""
        return [
            dict(num_chs=self.num_features, reduction=self.config.stride, module=f"encoder.{name}")
            for name in self.encoder.layer_names()
        ]

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A random batch at the nominal resolution: (batch_size, in_chans, img_size, img_size)."""
        c = self.config
        return torch.randn(batch_size, c.in_chans, c.img_size, c.img_size, device=self.encoder.latents.device)

    def forward_encoder(self, x: torch.Tensor, check_finite: bool = False) -> EncoderOutput:
        """x: (b, c, H, W) -> latents (b, m, d) and tokens (b, n, d), n = (H / stride) * (W / stride), row-major.

        `check_finite`: raise ValueError if x holds NaN or infinite values."""
        tok = self.tokenizer(x, check_finite)
        return self.encoder(tok.tokens, tok.mask)

    def forward_features(self, x: torch.Tensor, check_finite: bool = False) -> torch.Tensor:
        """x: (b, c, H, W) -> the final latents (b, m, d), what the head pools (`forward_encoder` adds the tokens)."""
        return self.forward_encoder(x, check_finite).latents

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """features: the final latents (b, m, d) -> logits (b, num_classes), or the pooled, normalised latents (b, d)
        with ``pre_logits=True``."""
        return self.head(features, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor, check_finite: bool = False) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, check_finite))

    def forward_attention(self, x: torch.Tensor) -> tuple[EncoderOutput, Intermediates]:
        """Final latents and tokens plus every layer's latents, tokens and post-softmax attention maps
        (``Intermediates.attention[i].latents_to_tokens`` (b, h, m, n), ``.tokens_to_latents`` (b, h, n, m))."""
        intermediates = Intermediates()
        features = self.encoder(self.tokenizer(x).tokens, intermediates=intermediates, return_maps=True)
        return features, intermediates

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the token maps after the layers in `indices`, with the final latents unless
        `intermediates_only`.

        indices: None = every layer, n = the last n, or a list of layer indices (negative from the end).
        output_fmt: "NCHW" -> maps (b, d, H / stride, W / stride); "NLC" -> tokens (b, n, d).
        stop_early: run only up to the last layer asked for (the latents returned are then that layer's).
        norm: accepted for timm's API; BiXT has no final token norm, so it changes nothing.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take, last = take_indices(len(self.encoder.layer_names()), indices)
        collected = Intermediates()
        tokens = self.tokenizer(x).tokens
        features = self.encoder(tokens, intermediates=collected, num_layers=last + 1 if stop_early else None)
        maps = [collected.tokens[i] for i in take]
        if output_fmt == "NCHW":
            stride = self.config.stride
            maps = [tokens_to_map(tokens, x.shape[-2] // stride, x.shape[-1] // stride) for tokens in maps]
        return maps if intermediates_only else (features.latents, maps)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Keep the layers up to the last one in `indices` (timm's API); returns the kept indices, non-negative.

        prune_head: remove the classifier and the head's norm (features only; the config then no longer describes the
        head, so save the unpruned model). prune_norm: BiXT has no final token norm, nothing to remove."""
        take, last = take_indices(len(self.encoder.layer_names()), indices)
        self.encoder.keep_layers(last + 1)
        # the encoder knows whether its one-sided last layer survived (the iterative one has none to lose)
        one_sided_last = getattr(self.encoder, "one_sided_last", self.config.one_sided_last)
        self.config = dataclasses.replace(self.config, depth=last + 1, one_sided_last=one_sided_last)
        if prune_head:
            self.head.remove_norm()
            self.reset_classifier(0, "")
        return take

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for layer-wise learning-rate decay (timm's format): the stem (tokenizer and latents),
        one group per layer, then the head."""
        return dict(stem=r"^tokenizer|^encoder\.latents$", blocks=self.encoder.block_patterns())

    def load_pretrained(self, path: str) -> None:
        """timm's hook for its file route (``pretrained_cfg_overlay=dict(file=...)``, train.py's --pretrained-path).

        The file is read as `load_official` reads it (no arbitrary unpickling): the authors' layout is converted and
        checked by `load_official`; a state dict already in this model's layout (what timm's train.py saves) loads
        strictly."""
        # imported here: bixt.convert reads weight files through bixt.models.serialization, a cycle at module level
        from bixt.convert import load_official, read_official_checkpoint

        state = read_official_checkpoint(path)
        if set(state) == set(self.state_dict()):
            self.load_state_dict(state)
        else:
            load_official(self, state)

    def drop_one_sided_layer(self) -> BiXT:
        """Remove the one-sided last layer so that the final tokens come from a fully trained layer (d13 -> dense)."""
        self.encoder.drop_one_sided_layer()
        self.config = dataclasses.replace(self.config, depth=self.config.depth - 1, one_sided_last=False)
        return self
