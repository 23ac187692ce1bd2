"""Padding masks: padded tokens neither receive from the latents nor contribute to them, on every attention path.

The property: appending padding (with arbitrary values behind the mask) changes neither the latents nor any real
token's output, and a padded batch gives each sample what it gets alone, unpadded. Checked in float64 over random
lengths, on the explicit and fused attention paths, for BiXT and every baseline encoder, and end to end for the
sequence and point models.
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import bixt
from bixt.data.collate import collate_padded
from bixt.layers.attention_math import attend
from bixt.layers.attention_paths import ATTENTION_PATHS, attention_path
from bixt.layers.sequential import SequentialCrossBlock
from bixt.models.baselines import IterativeEncoder
from bixt.models.encoder import BiXTEncoder
from bixt.models.transformer import TransformerEncoder

DIM, HEADS = 16, 2
# explicit, fused and every faster path; the Triton kernel's cases carry the `triton` marker, because on CPU they need
# a process started with TRITON_INTERPRET=1 (make test runs them in a second pytest invocation)
PATHS = tuple(pytest.param(p, marks=pytest.mark.triton) if p == "triton" else p for p in ATTENTION_PATHS if p != "auto")


@functools.cache
def path_unavailable(path: str) -> str | None:
    """Why `path` cannot run on this machine (e.g. a GPU-only kernel on CPU), or None when it can."""
    q = torch.randn(1, 1, 2, 4, dtype=torch.float64)
    try:
        with attention_path(path):
            attend(q, q, q)
    except RuntimeError as error:
        return str(error)
    return None


def require(path: str) -> None:
    reason = path_unavailable(path)
    if reason is not None:
        pytest.skip(f"attention path {path!r} unavailable here: {reason}")


def small_encoder(kind: str) -> nn.Module:
    torch.manual_seed(0)
    common = dict(dim=DIM, depth=3, num_heads=HEADS)
    if kind == "bixt":  # all layers bi-directional: the token outputs of every layer matter
        encoder = BiXTEncoder(num_latents=6, one_sided_last=False, **common)
    elif kind == "bixt_one_sided":
        encoder = BiXTEncoder(num_latents=6, one_sided_last=True, **common)
    elif kind == "sequential":
        encoder = BiXTEncoder(num_latents=6, one_sided_last=False, two_way_block=SequentialCrossBlock, **common)
    elif kind == "perceiver":
        encoder = IterativeEncoder(num_latents=6, self_per_cross=2, share_cross="all_but_first", **common)
    else:
        encoder = TransformerEncoder(**common)
    return encoder.double().eval()


def run(
    encoder: nn.Module, tokens: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(latents or None, tokens) of one encoder call."""
    out = encoder(tokens, mask)
    return (None, out) if isinstance(out, torch.Tensor) else (out.latents, out.tokens)


ENCODERS = ("bixt", "bixt_one_sided", "sequential", "perceiver", "transformer")


@pytest.mark.parametrize("kind", ENCODERS)
@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=6, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=3),
    extra=st.integers(min_value=1, max_value=7),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_appended_padding_changes_nothing(kind: str, path: str, lengths: list[int], extra: int, seed: int) -> None:
    require(path)
    encoder = small_encoder(kind)
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    tokens = torch.randn(len(lengths), width + extra, DIM, generator=gen, dtype=torch.float64) * 3  # garbage padding
    mask = torch.arange(width + extra)[None] < torch.tensor(lengths)[:, None]
    with attention_path(path), torch.no_grad():
        lat_short, tok_short = run(encoder, tokens[:, :width], mask[:, :width])
        lat_long, tok_long = run(encoder, tokens, mask)
        for i, n in enumerate(lengths):  # each sample alone, no padding at all, no mask
            lat_alone, tok_alone = run(encoder, tokens[i : i + 1, :n], None)
            torch.testing.assert_close(tok_long[i, :n], tok_alone[0], rtol=1e-10, atol=1e-10)
            if lat_alone is not None:
                torch.testing.assert_close(lat_long[i], lat_alone[0], rtol=1e-10, atol=1e-10)
    real = mask[:, :width]
    torch.testing.assert_close(tok_long[:, :width][real], tok_short[real], rtol=1e-10, atol=1e-10)
    if lat_long is not None:
        torch.testing.assert_close(lat_long, lat_short, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["bixt", "perceiver", "transformer"])
@pytest.mark.parametrize("path", PATHS)
def test_padding_that_spans_several_chunks(kind: str, path: str) -> None:
    """Lengths beyond one chunk of the chunked path (>= 64 tokens): real lengths 70 and 130, 90 more padded."""
    require(path)
    encoder = small_encoder(kind)
    tokens = torch.randn(2, 220, DIM, dtype=torch.float64)
    mask = torch.arange(220)[None] < torch.tensor([[70], [130]])
    with attention_path(path), torch.no_grad():
        lat_long, tok_long = run(encoder, tokens, mask)
        for i, n in enumerate((70, 130)):
            lat_alone, tok_alone = run(encoder, tokens[i : i + 1, :n], None)
            torch.testing.assert_close(tok_long[i, :n], tok_alone[0], rtol=1e-10, atol=1e-10)
            if lat_alone is not None:
                torch.testing.assert_close(lat_long[i], lat_alone[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_padded_tokens_receive_nothing_from_the_latents(path: str) -> None:
    """A padded token gathers nothing: its attention output is zero, so its update is the output projection's bias."""
    require(path)
    encoder = small_encoder("bixt")
    block = encoder.layers[0].cross_block
    tokens = torch.randn(2, 5, DIM, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    latents = encoder.latents.expand(2, -1, -1)
    with attention_path(path), torch.no_grad():
        _, d_tok, _ = block.attn(block.norm1_latents(latents), block.norm1_tokens(tokens), mask)
    bias = block.attn.proj_tokens.bias
    assert torch.equal(d_tok[0, 3:], bias.expand(2, -1))
    assert not torch.isclose(d_tok[0, :3], bias.expand(3, -1)).all(dim=-1).any()


def test_a_sample_without_real_tokens_is_an_error() -> None:
    model = bixt.create_model("bixt_lra_listops")
    ids = torch.randint(1, 16, (2, 10))
    ids[1] = 0
    with pytest.raises(ValueError, match="no real token"):
        model(ids)


def wake_heads(model: nn.Module) -> nn.Module:
    """Zero-initialised classifiers output constants; give them weights so the outputs depend on the input."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.5)
    return model.double().eval()


@pytest.mark.parametrize("name", ["bixt_lra_listops", "transformer_lra_listops"])
@pytest.mark.parametrize("path", PATHS)
def test_sequence_model_logits_ignore_appended_padding(name: str, path: str) -> None:
    require(path)
    model = wake_heads(bixt.create_model(name))
    ids = torch.randint(1, 16, (3, 40))
    ids[1, 25:] = 0
    ids[2, 7:] = 0
    padded = torch.cat((ids, torch.zeros(3, 33, dtype=torch.long)), dim=1)
    with attention_path(path), torch.no_grad():
        logits = model(ids)
        torch.testing.assert_close(model(padded), logits, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(model(ids[2:, :7])[0], logits[2], rtol=1e-10, atol=1e-10)


def test_retrieval_pairs_of_different_lengths_match_separate_encoding() -> None:
    """The pair is encoded as one stacked, padded batch; that must equal encoding each side on its own."""
    model = wake_heads(bixt.create_model("bixt_lra_retrieval"))
    a, b = torch.randint(1, 257, (2, 30)), torch.randint(1, 257, (2, 12))
    with torch.no_grad():
        u = model.encode(a).pooled()
        v = model.encode(b).pooled()
        torch.testing.assert_close(model(a, b), model.head(u, v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["bixt_points_cls", "bixt_points_cls_naive"])
def test_ragged_point_clouds_through_collate(name: str) -> None:
    """Clouds of different sizes, padded by the data collate helper: each logit row equals that cloud alone."""
    model = wake_heads(bixt.create_model(name))
    gen = torch.Generator().manual_seed(0)
    clouds = [torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1 for n in (70, 100, 64)]
    points, mask, _labels = collate_padded([(cloud, 0) for cloud in clouds])
    assert points.shape == (3, 100, 3) and mask.sum(1).tolist() == [70, 100, 64]
    points = torch.where(mask[..., None], points, torch.full_like(points, 5.0))  # padded points far outside
    with torch.no_grad():
        batched = model(points, mask)
        for i, cloud in enumerate(clouds):
            torch.testing.assert_close(batched[i], model(cloud[None])[0], rtol=1e-9, atol=1e-9)


def test_part_segmentation_real_points_ignore_padding() -> None:
    model = wake_heads(bixt.create_model("bixt_points_partseg"))
    points = torch.rand(2, 50, 3, dtype=torch.float64) * 2 - 1
    category = torch.tensor([3, 7])
    garbage = torch.rand(2, 20, 3, dtype=torch.float64) * 9
    mask = torch.cat((torch.ones(2, 50, dtype=torch.bool), torch.zeros(2, 20, dtype=torch.bool)), dim=1)
    with torch.no_grad():
        alone = model(points, category)
        padded = model(torch.cat((points, garbage), dim=1), category, mask)
    torch.testing.assert_close(padded[:, :50], alone, rtol=1e-9, atol=1e-9)
