"""Tokenizers, heads and models for sequences, point clouds, N-D arrays and dense image prediction."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bixt
from bixt.bench.cost import count_cost
from bixt.heads import RetrievalPairHead
from bixt.heads_dense import FPNSegmentationHead, LinearSegmentationHead, PartSegmentationHead
from bixt.layers.pos_embed import fourier_features, grid_coordinates, sinusoidal_features_1d
from bixt.models.sequence import SequenceClassifier, SequenceConfig
from bixt.tokenizers.arrays import ArrayTokenizer
from bixt.tokenizers.points import GroupedPointTokenizer, NaivePointTokenizer, farthest_point_sample
from bixt.tokenizers.sequence import SequenceTokenizer


def wake_heads(model: nn.Module) -> nn.Module:
    """Zero-initialised classifiers output constants; give them weights so the outputs depend on the input."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.5)
    return model.double().eval()


# --- sequences -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["fourier", "learned"])
def test_sequence_tokenizer_mask_and_positions(positions: str) -> None:
    tok = SequenceTokenizer(vocab_size=20, dim=8, max_length=64, positions=positions)
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 0, 2, 7, 9]])
    out = tok(ids)
    assert out.tokens.shape == (2, 5, 8)
    assert out.mask.tolist() == (ids != 0).tolist()
    # a position's embedding does not depend on the length of the sequence it is in
    torch.testing.assert_close(tok.position_embedding(64)[:, :5], tok.position_embedding(5))
    # the same id at two positions differs by the position embeddings alone
    same = tok(torch.tensor([[6, 6]])).tokens[0]
    torch.testing.assert_close(same[1] - same[0], tok.position_embedding(2)[0, 1] - tok.position_embedding(2)[0, 0])


def test_sequence_tokenizer_ngram_mixes_neighbours_only() -> None:
    tok = SequenceTokenizer(vocab_size=20, dim=8, max_length=64, ngram=3).double()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    base = tok(ids).tokens[0]
    changed = ids.clone()
    changed[0, 2] = 9  # a token's window is itself and one neighbour on each side
    moved = (tok(changed).tokens[0] - base).abs().amax(dim=-1)
    assert (moved[1:4] > 1e-6).all() and (moved[[0, 4, 5]] < 1e-12).all()
    # padding embeds as zeros, what the convolution supplies past the end: appending it changes no real token
    padded = tok(torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)).tokens[0, :6]
    torch.testing.assert_close(padded, base)


@pytest.mark.parametrize("positions", ["fourier", "learned"])
def test_sequence_tokenizer_random_offsets_move_training_positions_within_the_maximum(positions: str) -> None:
    torch.manual_seed(0)
    tok = SequenceTokenizer(vocab_size=20, dim=8, max_length=16, positions=positions, random_offsets=True)
    ids = torch.randint(1, 20, (64, 10))
    table = tok.position_embedding(16)[0]  # (16, dim): positions 0 .. 15
    starts = set()
    for sample, added in zip(ids, tok.train()(ids).tokens - tok.embed(ids), strict=True):
        # each sequence's positions are consecutive and start somewhere in [0, 16 - 10]
        match = [s for s in range(7) if torch.allclose(added, table[s : s + 10], atol=1e-6)]
        assert len(match) == 1, sample
        starts.add(match[0])
    assert len(starts) > 3  # drawn, not fixed
    evaluated = tok.eval()(ids).tokens - tok.embed(ids)
    torch.testing.assert_close(evaluated, table[:10].expand(64, -1, -1))  # evaluation starts at 0


def test_sine_features_are_those_of_the_transformer() -> None:
    feats = sinusoidal_features_1d(torch.tensor([0, 5]), num_feats=8)
    i = torch.arange(4)
    expected = 5 / 10000 ** (2 * i / 8)
    torch.testing.assert_close(feats[1], torch.cat((expected.sin(), expected.cos())).float())
    torch.testing.assert_close(feats[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_sequence_bad_input_is_a_clear_error() -> None:
    tok = SequenceTokenizer(vocab_size=10, dim=8, max_length=16)
    with pytest.raises(ValueError, match="exceeds the configured maximum of 16"):
        tok(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        tok(torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        tok(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="shape"):
        tok(torch.ones(4, dtype=torch.long))


def test_bixt_sequence_model_runs_at_16k_tokens() -> None:
    config = SequenceConfig(max_length=16384, embed_dim=32, depth=2, num_heads=1, num_latents=8, num_classes=3)
    model = SequenceClassifier(config).eval()
    ids = torch.randint(1, 257, (1, 16384))
    with torch.no_grad():
        logits = model(ids)
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["bixt_lra_listops", "transformer_lra_listops", "bixt_lra_text"])
def test_lra_models_take_ids_with_zero_padding(name: str) -> None:
    model = bixt.create_model(name).eval()
    ids = model.example_input(3)
    assert ids.dtype == torch.int64 and (ids[1:] == 0).any() and (ids[0] != 0).all()
    assert model(ids).shape == (3, model.config.num_classes)
    with pytest.raises(ValueError, match="exceeds the configured maximum"):
        model(torch.ones(1, model.config.max_length + 1, dtype=torch.long))


def test_retrieval_model_takes_two_sequences_and_the_pair_head_sees_their_order() -> None:
    model = wake_heads(bixt.create_model("bixt_lra_retrieval"))
    a, b = torch.randint(1, 257, (2, 20)), torch.randint(1, 257, (2, 33))
    with torch.no_grad():
        ab, ba = model(a, b), model(b, a)
    assert ab.shape == (2, 2)
    assert not torch.allclose(ab, ba)  # u - v makes the head order-aware
    with pytest.raises(ValueError, match="same batch size"):
        model(a, b[:1])
    head = RetrievalPairHead(4, 3, hidden_dim=5)
    assert head(torch.randn(2, 4), torch.randn(2, 4), pre_logits=True).shape == (2, 5)


# --- point clouds --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bixt_points_cls", "bixt_points_cls_naive"])
def test_point_classifier_is_invariant_to_point_order(name: str) -> None:
    model = wake_heads(bixt.create_model(name))
    points = torch.rand(2, 300, 3, dtype=torch.float64) * 2 - 1
    perm = torch.randperm(300)
    with torch.no_grad():
        logits = model(points)
        torch.testing.assert_close(model(points[:, perm]), logits, rtol=1e-9, atol=1e-9)
    assert logits.shape == (2, 40) and logits.std() > 0


def test_grouped_tokenizer_is_invariant_to_point_order_with_tied_distances() -> None:
    # Pixel grids (the MNIST point sets) are full of exact distance ties; ties must not be broken by input position.
    tok = GroupedPointTokenizer(dim=16, num_groups=16, group_size=8, coord_dims=2, in_features=1)
    grid = torch.stack(torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij"), -1).reshape(1, 144, 2)
    points = torch.cat((grid / 6 - 1, torch.rand(1, 144, 1)), dim=-1).repeat(3, 1, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        out = tok(points)
        for _ in range(3):
            perm = torch.randperm(144)
            shuffled = tok(points[:, perm])
            torch.testing.assert_close(shuffled.coords, out.coords, rtol=0, atol=0)
            torch.testing.assert_close(shuffled.tokens, out.tokens)


def test_part_segmentation_is_per_point_and_follows_the_order() -> None:
    model = wake_heads(bixt.create_model("bixt_points_partseg"))
    points = torch.rand(2, 200, 3, dtype=torch.float64) * 2 - 1
    category = torch.tensor([0, 5])
    perm = torch.randperm(200)
    with torch.no_grad():
        logits = model(points, category)
        torch.testing.assert_close(model(points[:, perm], category), logits[:, perm], rtol=1e-9, atol=1e-9)
        other_category = model(points, torch.tensor([1, 5]))
    assert logits.shape == (2, 200, 50)
    assert not torch.allclose(other_category[0], logits[0])  # the category embedding conditions the prediction
    torch.testing.assert_close(other_category[1], logits[1])
    with pytest.raises(ValueError, match="category"):
        model(points)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model(points, torch.tensor([0, 16]))


def test_farthest_point_sampling_starts_far_out_and_spreads() -> None:
    line = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [10, 0, 0]]])
    idx = farthest_point_sample(line, 3)
    assert idx[0].tolist() == [4, 0, 3]  # farthest from the centroid (x = 3.2), then the far end, then the middle gap
    mask = torch.tensor([[True, True, True, True, False]])  # the outlier is padding: never chosen
    assert farthest_point_sample(line, 2, mask)[0].tolist() == [0, 3]


def test_grouped_tokenizer_ignores_padded_points() -> None:
    tok = GroupedPointTokenizer(dim=16, num_groups=8, group_size=4).double()
    points = torch.rand(1, 40, 3, dtype=torch.float64)
    padded = torch.cat((points, torch.full((1, 10, 3), 0.5, dtype=torch.float64)), dim=1)  # duplicates inside the cloud
    mask = torch.arange(50)[None] < 40
    out, out_padded = tok(points), tok(padded, mask)
    torch.testing.assert_close(out_padded.tokens, out.tokens)
    assert out_padded.mask is None and out_padded.coords.shape == (1, 8, 3)


def test_grouped_tokenizer_scales_only_the_centred_coordinates() -> None:
    torch.manual_seed(0)
    points = torch.rand(2, 60, 3, dtype=torch.float64) * 2 - 1  # (x, y, intensity)
    seen = {}
    for scale in (1.0, 6.75):
        tok = GroupedPointTokenizer(dim=16, num_groups=8, group_size=4, coord_dims=2, in_features=1, local_scale=scale)
        tok.point_mlp1.register_forward_hook(lambda module, args, out, scale=scale: seen.update({scale: args[0]}))
        out = tok.double()(points)
        seen[scale, "coords"] = out.coords
    torch.testing.assert_close(seen[6.75, "coords"], seen[1.0, "coords"], rtol=0, atol=0)  # same groups
    torch.testing.assert_close(seen[6.75][..., :2], 6.75 * seen[1.0][..., :2])
    torch.testing.assert_close(seen[6.75][..., 2:], seen[1.0][..., 2:])  # the intensity is not scaled
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="local_scale must be a finite number > 0"):
            GroupedPointTokenizer(dim=16, local_scale=bad)
        with pytest.raises(ValueError, match="local_scale must be a finite number > 0"):
            bixt.create_model("bixt_points_cls", local_scale=bad)


def test_grouped_tokenizer_encodes_groups_as_the_two_stage_pointnet() -> None:
    # encode_groups computes point_mlp2's first layer in two halves and pools with max or amax by whether gradients
    # flow; the written-out PointNet (every point's features concatenated with its group's max, amax pooling) must give
    # the same tokens and, with no ties among float64 random features, the same gradients
    torch.manual_seed(0)
    tok = GroupedPointTokenizer(dim=16, num_groups=8, group_size=4, coord_dims=2, in_features=1).double()
    local = torch.randn(2, 8, 4, 3, dtype=torch.float64, requires_grad=True)

    def written_out(local: torch.Tensor) -> torch.Tensor:
        feats = tok.point_mlp1(local)
        pooled = feats.amax(dim=2, keepdim=True).expand_as(feats)
        return tok.point_mlp2(torch.cat((feats, pooled), dim=-1)).amax(dim=2)

    expected = written_out(local)
    tokens = tok.encode_groups(local)
    torch.testing.assert_close(tokens, expected)
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((tokens * weights).sum(), [local, *tok.parameters()], allow_unused=True)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [local, *tok.parameters()], allow_unused=True)
    for got, want in zip(grads, expected_grads, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want)
    with torch.no_grad():  # amax instead of max: the same values to the bit
        torch.testing.assert_close(tok.encode_groups(local), tokens.detach(), rtol=0, atol=0)


def test_point_bad_input_is_a_clear_error() -> None:
    grouped = GroupedPointTokenizer(dim=16, num_groups=8, group_size=16)
    with pytest.raises(ValueError, match="at least 16 points"):
        grouped(torch.rand(2, 12, 3))
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 10:] = False
    with pytest.raises(ValueError, match=r"samples \[1\] have \[10\]"):
        grouped(torch.rand(2, 20, 3), mask)
    naive = NaivePointTokenizer(dim=16)
    nan_points = torch.rand(1, 5, 3)
    nan_points[0, 2, 1] = float("nan")
    for tokenizer in (naive, grouped):
        with pytest.raises(ValueError, match="NaN"):
            tokenizer(nan_points)
    with pytest.raises(ValueError, match=r"\(batch, points, 3\)"):
        naive(torch.rand(1, 5, 2))
    with pytest.raises(TypeError, match="float"):
        naive(torch.ones(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        bixt.create_model("bixt_points_cls")(torch.full((1, 100, 3), float("nan")))


def test_naive_tokenizer_takes_extra_point_features() -> None:
    tok = NaivePointTokenizer(dim=8, coord_dims=2, in_features=1)  # e.g. (x, y, intensity) point sets
    out = tok(torch.rand(3, 7, 3))
    assert out.tokens.shape == (3, 7, 8) and out.coords.shape == (3, 7, 2)


# --- N-D arrays and Fourier features --------------------------------------------------------------------------------


def test_fourier_features_follow_the_perceiver_formula() -> None:
    coords = torch.tensor([[0.25, -0.5]])
    feats = fourier_features(coords, num_bands=3, max_freq=8.0)  # frequencies 1, 2.5, 4
    assert feats.shape == (1, 2 * 7)
    freqs = torch.tensor([1.0, 2.5, 4.0])
    x = 0.25
    expected = torch.cat(((math.pi * x * freqs).sin(), (math.pi * x * freqs).cos(), torch.tensor([x])))
    torch.testing.assert_close(feats[0, :7], expected)


@pytest.mark.parametrize("spatial", [(9,), (4, 5), (2, 3, 4)])
def test_array_tokenizer_any_number_of_axes(spatial: tuple[int, ...]) -> None:
    tok = ArrayTokenizer(in_chans=2, dim=8, num_axes=len(spatial), num_bands=4)
    out = tok(torch.randn(3, 2, *spatial))
    n = math.prod(spatial)
    assert out.tokens.shape == (3, n, 8) and out.coords.shape == (3, n, len(spatial)) and out.mask is None
    assert out.coords.min() == -1 and out.coords.max() == 1
    # row-major: the last axis varies fastest
    torch.testing.assert_close(out.coords[0], grid_coordinates(spatial))
    with pytest.raises(ValueError, match="spatial sizes"):
        tok(torch.randn(3, 2, *spatial, 2))


# --- dense image prediction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bixt_ti_l64_d13_p16_seg_linear", "bixt_ti_l64_d13_p16_seg_fpn"])
def test_segmentation_gives_pixel_logits_at_any_size(name: str) -> None:
    model = bixt.create_model(name, depth=4, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 48, 80))
    assert out.shape == (2, 7, 48, 80)
    assert all(layer.cross_block.bidirectional for layer in model.encoder.layers)  # the dense (d13) recipe


def test_segmentation_backbone_loads_a_d13_classifier() -> None:
    """Same parameter names: a d13 classifier's weights load, leaving only its 13th layer and head unused."""
    classifier = bixt.create_model("bixt_ti_l64_d13_p16", img_size=32)
    segmenter = bixt.create_model("bixt_ti_l64_d13_p16_seg_linear", img_size=32)
    unused = segmenter.load_backbone(classifier.state_dict())
    assert unused and all(k.startswith(("head.", "encoder.layers.12.")) for k in unused)
    torch.testing.assert_close(segmenter.encoder.layers[11].state_dict(), classifier.encoder.layers[11].state_dict())
    torch.testing.assert_close(segmenter.tokenizer.state_dict(), classifier.tokenizer.state_dict())
    with pytest.raises(ValueError, match="lacks backbone weights"):
        segmenter.load_backbone(bixt.create_model("bixt_ti_l64_p16", img_size=32, depth=3).state_dict())


def test_part_segmentation_head_without_categories() -> None:
    head = PartSegmentationHead(8, 4, num_categories=0)
    out = head(torch.randn(2, 5, 8), torch.randn(2, 3, 8))
    assert out.shape == (2, 5, 4)
    with pytest.raises(ValueError, match="no category embedding"):
        head(torch.randn(2, 5, 8), torch.randn(2, 3, 8), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    "name", ["bixt_lra_retrieval", "transformer_lra_text", "bixt_points_cls", "bixt_points_partseg"]
)
def test_cost_counts_on_the_meta_device_match_real_tensors(name: str) -> None:
    """`bixt models --flops` builds models on the meta device (shapes only): value checks must not block it."""
    torch.manual_seed(0)
    model = bixt.create_model(name)
    with torch.device("meta"):
        meta = bixt.create_model(name)
    real_inputs, meta_inputs = model.example_input(), meta.example_input()
    real_inputs = real_inputs if isinstance(real_inputs, tuple) else (real_inputs,)
    meta_inputs = meta_inputs if isinstance(meta_inputs, tuple) else (meta_inputs,)
    assert meta_inputs[0].is_meta
    assert count_cost(meta, *meta_inputs) == count_cost(model, *real_inputs)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("vit_ti_p16", dict(img_size=32, depth=2)),
        ("sequential_ti_l64_p16", dict(img_size=32, depth=2)),
        ("bixt_lra_listops", dict(depth=2)),
        ("transformer_lra_retrieval", dict(depth=2)),
        ("bixt_points_cls", dict(depth=2, num_points=64, num_groups=8, group_size=8)),
        ("bixt_points_partseg", dict(depth=2, num_points=64)),
        ("bixt_ti_l64_d13_p16_seg_fpn", dict(img_size=32, depth=4)),
    ],
)
def test_save_and_load_every_task_architecture(name: str, overrides: dict, tmp_path) -> None:
    torch.manual_seed(0)
    model = wake_heads(bixt.create_model(name, **overrides))
    inputs = model.example_input(2)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    inputs = tuple(x.double() if x.is_floating_point() else x for x in inputs)
    loaded = bixt.from_pretrained(model.float().save_pretrained(tmp_path / name)).double().eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs), model.double()(*inputs))


def test_dense_heads_pre_logits_are_what_their_classifiers_read() -> None:
    torch.manual_seed(0)
    latents, grid, size = torch.randn(2, 4, 16), (4, 6), (16, 24)
    maps = [torch.randn(2, 24, 16) for _ in range(4)]
    for head in (LinearSegmentationHead(16, 5), FPNSegmentationHead(16, 5, fpn_dim=8)):
        torch.nn.init.normal_(head.fc.weight if hasattr(head, "fc") else head.classifier.weight)
        levels = maps[-1:] if isinstance(head, LinearSegmentationHead) else maps
        pre = head(levels, latents, grid, size, pre_logits=True)
        if isinstance(head, LinearSegmentationHead):
            assert pre.shape == (2, 32, *grid)
            coarse = head.fc(pre.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            logits = head(maps[-1:], latents, grid, size)
        else:
            assert pre.shape == (2, 8, 4, 6)
            coarse = head.classifier(pre)
            logits = head(maps, latents, grid, size)
        expected = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        torch.testing.assert_close(logits, expected)
    part = PartSegmentationHead(16, 7, num_categories=3, hidden_dim=12)
    torch.nn.init.normal_(part.fc.weight)
    tokens, category = torch.randn(2, 9, 16), torch.tensor([0, 2])
    hidden = part(tokens, latents, category, pre_logits=True)
    assert hidden.shape == (2, 9, 12)
    torch.testing.assert_close(part(tokens, latents, category), part.fc(hidden))
