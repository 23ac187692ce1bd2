"""Sequence models (Long Range Arena): classification of one sequence, and retrieval over a pair of sequences.

ids (b, L) int64, 0 = padding -> SequenceTokenizer -> tokens, mask -> encoder -> pooled (b, d) -> head

The encoder is BiXT (`encoder="bixt"`, cost linear in L) or, for like-for-like comparisons, a full Transformer of
the same width and depth (`encoder="transformer"`, cost quadratic in L). Tokenizer, head and everything else are
shared. The head reads the mean of the features' `latents`: BiXT's latents, or for the Transformer the mean of its
real tokens (one summary vector, (b, 1, d)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from bixt.heads import ClassificationHead, RetrievalPairHead
from bixt.layers.init import init_weights_jax
from bixt.models.config_checks import check_positive
from bixt.models.encoder import BiXTEncoder, Intermediates
from bixt.models.encoder_config import EncoderConfig
from bixt.models.registry import register_architecture
from bixt.models.serialization import PretrainedMixin
from bixt.models.surface import EncoderModelMixin
from bixt.models.transformer import TransformerEncoder
from bixt.tokenizers.sequence import SEQUENCE_POSITIONS, SequencePositions, SequenceTokenizer

SequenceEncoderKind = Literal["bixt", "transformer"]
SEQUENCE_ENCODERS: tuple[str, ...] = get_args(SequenceEncoderKind)
EXAMPLE_LENGTH = 256  # example_input's default length: long enough to exercise padding, short enough for quick checks


@dataclass
class SequenceConfig(EncoderConfig):
    """A sequence classifier. Defaults: byte-level text (ids = byte + 1, 2 classes), BiXT with 32 latents."""

    encoder: SequenceEncoderKind = "bixt"
    vocab_size: int = 257  # including id 0 = padding
    max_length: int = 4096  # longer inputs are an error
    num_classes: int = 2
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 2
    num_latents: int = 32  # BiXT only
    positions: SequencePositions = "fourier"
    ngram: int = 1  # odd: each token embedding mixed with its neighbours by an ngram-wide convolution (1 = none)
    random_offsets: bool = False  # training only: positions start at a random offset in [0, max_length - L]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(vocab_size=self.vocab_size, max_length=self.max_length, ngram=self.ngram)
        if self.ngram % 2 == 0:
            raise ValueError(f"ngram must be odd (centred on its token), got {self.ngram}")
        if self.encoder not in SEQUENCE_ENCODERS:
            raise ValueError(f"encoder must be one of {SEQUENCE_ENCODERS}, got {self.encoder!r}")
        if self.positions not in SEQUENCE_POSITIONS:
            raise ValueError(f"positions must be one of {SEQUENCE_POSITIONS}, got {self.positions!r}")


@dataclass
class RetrievalConfig(SequenceConfig):
    """A pair classifier (are two documents related?): one shared encoder, then the [u, v, u*v, u-v] MLP."""

    pair_hidden_dim: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(pair_hidden_dim=self.pair_hidden_dim)
        if self.num_classes < 1:
            raise ValueError(f"a retrieval model needs num_classes >= 1, got {self.num_classes}")


@dataclass
class SequenceFeatures:
    """latents: (b, m, d) BiXT's latents, or (b, 1, d) the mean of the Transformer's real tokens;
    tokens: (b, L, d); token_mask: (b, L) bool, True = real."""

    latents: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor

    def pooled(self) -> torch.Tensor:
        """(b, d): what the head classifies."""
        return self.latents.mean(dim=1)


def masked_mean(tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens: tokens (b, L, d), token_mask (b, L) -> (b, 1, d)."""
    weights = token_mask.to(tokens.dtype)[..., None]  # (b, L, 1)
    return (tokens * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True)


class _SequenceBackbone(EncoderModelMixin, PretrainedMixin, nn.Module):
    """Tokenizer + encoder and the parts of the model surface that do not depend on the head."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = SequenceTokenizer(
            vocab_size=config.vocab_size,
            dim=config.embed_dim,
            max_length=config.max_length,
            positions=config.positions,
            ngram=config.ngram,
            random_offsets=config.random_offsets,
        )
        if config.encoder == "bixt":
            self.encoder = BiXTEncoder(num_latents=config.num_latents, one_sided_last=True, **config.encoder_args())
        else:
            self.encoder = TransformerEncoder(**config.encoder_args())

    def encode(self, ids: torch.Tensor, intermediates: Intermediates | None = None) -> SequenceFeatures:
        """ids: (b, L) int64, 0 = padding -> SequenceFeatures."""
        tok = self.tokenizer(ids)
        if isinstance(self.encoder, BiXTEncoder):
            out = self.encoder(tok.tokens, tok.mask, intermediates=intermediates)
            return SequenceFeatures(latents=out.latents, tokens=out.tokens, token_mask=tok.mask)
        tokens = self.encoder(tok.tokens, tok.mask, intermediates=intermediates)
        if intermediates is not None:  # the Transformer's per-layer summaries, in the place of latents
            intermediates.latents.extend(masked_mean(t, tok.mask) for t in intermediates.tokens)
        return SequenceFeatures(latents=masked_mean(tokens, tok.mask), tokens=tokens, token_mask=tok.mask)

    def example_ids(self, batch_size: int = 1, length: int | None = None) -> torch.Tensor:
        """Random ids (batch_size, length); sample i is padded (id 0) over its last i * length / (2 * batch_size)
        positions, so a batch exercises the padding mask."""
        length = length or min(EXAMPLE_LENGTH, self.config.max_length)
        device = self.tokenizer.embed.weight.device
        ids = torch.randint(1, self.config.vocab_size, (batch_size, length), device=device)
        for i in range(1, batch_size):
            ids[i, length - (i * length) // (2 * batch_size) :] = 0
        return ids


@register_architecture
class SequenceClassifier(_SequenceBackbone):
    """forward(ids): (b, L) int64, 0 = padding, L <= max_length -> logits (b, num_classes)."""

    config_class = SequenceConfig
    inputs = ("ids",)  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: SequenceConfig | None = None) -> None:
        config = config or SequenceConfig()
        super().__init__(config)
        self.head = ClassificationHead(config.embed_dim, config.num_classes, drop=config.drop_rate)
        init_weights_jax(self)

    def example_input(self, batch_size: int = 1, length: int | None = None) -> torch.Tensor:
        return self.example_ids(batch_size, length)

    def forward_features(self, ids: torch.Tensor, *, intermediates: Intermediates | None = None) -> SequenceFeatures:
        return self.encode(ids, intermediates)

    def forward_head(self, features: SequenceFeatures, pre_logits: bool = False) -> torch.Tensor:
        # one pooled vector per sample, shaped (b, 1, d) for the head, whose mean over dim 1 is then the identity
        return self.head(features.pooled()[:, None], pre_logits=pre_logits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(ids))


@register_architecture
class SequenceRetrieval(_SequenceBackbone):
    """forward(ids_a, ids_b): two (b, L_a), (b, L_b) int64 batches, 0 = padding -> logits (b, num_classes).

    Both sequences go through the same encoder in one pass: the shorter batch is padded to the longer one's length
    (padding changes no real token) and the two are stacked, so features hold 2b samples, first all a, then all b.
    Their pooled encodings u, v meet in the [u, v, u*v, u-v] MLP.
    """

    config_class = RetrievalConfig
    inputs = ("ids_a", "ids_b")  # forward's positional arguments, for the engine (bixt.engine.tasks)

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        config = config or RetrievalConfig()
        super().__init__(config)
        self.head = RetrievalPairHead(config.embed_dim, config.num_classes, hidden_dim=config.pair_hidden_dim)
        init_weights_jax(self)

    def example_input(self, batch_size: int = 1, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.example_ids(batch_size, length), self.example_ids(batch_size, length)

    @staticmethod
    def stack_pair(ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
        """(b, L_a), (b, L_b) -> (2b, max(L_a, L_b)): both batches padded with id 0 to a common length, a first."""
        for ids in (ids_a, ids_b):
            if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
                raise ValueError(f"expected two (batch, length) id tensors, got {getattr(ids, 'shape', type(ids))}")
        if ids_a.shape[0] != ids_b.shape[0]:
            raise ValueError(
                f"the two sequences of a pair need the same batch size, got {ids_a.shape} and {ids_b.shape}"
            )
        length = max(ids_a.shape[1], ids_b.shape[1])
        return torch.cat([F.pad(ids, (0, length - ids.shape[1])) for ids in (ids_a, ids_b)])

    def forward_features(
        self, ids_a: torch.Tensor, ids_b: torch.Tensor, *, intermediates: Intermediates | None = None
    ) -> SequenceFeatures:
        """Features (and, if given, per-layer outputs) of the stacked pair: 2b samples, the first b from ids_a."""
        return self.encode(self.stack_pair(ids_a, ids_b), intermediates)

    def forward_head(self, features: SequenceFeatures, pre_logits: bool = False) -> torch.Tensor:
        pooled = features.pooled()
        half = pooled.shape[0] // 2  # slices, not chunk(2): torch.export cannot prove chunk's count for any batch
        u, v = pooled[:half], pooled[half:]
        return self.head(u, v, pre_logits=pre_logits)

    def forward(self, ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(ids_a, ids_b))
