"""The baselines the paper compares BiXT with: exact sizes, costs in the paper's convention, and how they differ."""

from __future__ import annotations

import pytest
import torch

import bixt
from bixt.bench.cost import Cost, count_cost, count_flops
from bixt.layers.blocks import CrossBlock
from bixt.layers.sequential import SequentialCrossBlock
from bixt.models.baselines import PerceiverConfig, PerceiverNet


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def image(size: int = 224) -> torch.Tensor:
    return torch.randn(1, 3, size, size)


def test_vit_ti_is_deit_ti() -> None:
    model = bixt.create_model("vit_ti_p16")
    assert num_params(model) == 5_717_416
    cost = count_cost(model, image())
    assert cost.flops == pytest.approx(1.26e9, rel=0.01)  # SPEC 1.9: ViT-Ti-like, fvcore, N = 196
    assert cost.activations == pytest.approx(6.0e6, rel=0.02)


def test_vit_runs_at_other_resolutions() -> None:
    """The learned position table is interpolated for other grids; at the nominal grid it is used as is."""
    model = bixt.create_model("vit_ti_p16", img_size=64, depth=2).eval()
    assert model(torch.randn(2, 3, 96, 48)).shape == (2, 1000)
    pos = model._position_embedding(4, 4)
    assert pos is model.pos_embed


@pytest.fixture(scope="module")
def ti_costs() -> dict[str, tuple[int, Cost]]:
    """Parameters and cost at 224 of BiXT-Ti/16 and its sequential twin (built once: they are 15M-parameter models)."""
    out = {}
    for name in ("bixt_ti_l64_p16", "sequential_ti_l64_p16"):
        model = bixt.create_model(name)
        out[name] = (num_params(model), count_cost(model, image()))
    return out


def test_sequential_d12_cost_matches_the_paper(ti_costs: dict[str, tuple[int, Cost]]) -> None:
    """Table 1(a): sequential cross-attention d12 = 1.81 GFLOPs / 9.24M activations at 224 (fvcore convention)."""
    _, cost = ti_costs["sequential_ti_l64_p16"]
    assert cost.flops == pytest.approx(1.81e9, rel=0.01)
    assert cost.activations == pytest.approx(9.24e6, rel=0.02)


def test_sequential_minus_bidirectional_is_exactly_the_extra_projections(ti_costs: dict[str, tuple[int, Cost]]) -> None:
    """Per layer: two more D x D input projections (with bias); FLOPs: those projections on n tokens and m latents,
    plus the second similarity matrix (m n D multiply-adds, summed over heads)."""
    dim, m, n, depth = 192, 64, 196, 12
    (params_bixt, cost_bixt), (params_seq, cost_seq) = ti_costs["bixt_ti_l64_p16"], ti_costs["sequential_ti_l64_p16"]
    two_way_layers = depth - 1  # the last layer is one-sided in both
    assert params_seq - params_bixt == two_way_layers * 2 * (dim * dim + dim)
    assert params_seq == 15_121_192 + two_way_layers * 2 * (dim * dim + dim)  # SPEC 2.1's estimate, made exact
    assert cost_seq.flops - cost_bixt.flops == two_way_layers * ((n + m) * dim * dim + m * n * dim)


@pytest.mark.parametrize("dim", [32, 48])
def test_one_sequential_layer_against_one_bidirectional_layer(dim: int) -> None:
    m, n = 5, 11
    bi = CrossBlock(dim, dim, num_heads=2)
    seq = SequentialCrossBlock(dim, dim, num_heads=2)
    assert num_params(seq) - num_params(bi) == 2 * (dim * dim + dim)
    latents, tokens = torch.randn(1, m, dim), torch.randn(1, n, dim)
    assert count_flops(seq, latents, tokens) - count_flops(bi, latents, tokens) == (n + m) * dim * dim + m * n * dim


def test_sequential_layer_returns_both_attention_directions() -> None:
    seq = SequentialCrossBlock(32, 32, num_heads=2).eval()
    _, _, maps = seq(torch.randn(3, 5, 32), torch.randn(3, 7, 32), return_maps=True)
    assert maps.latents_to_tokens.shape == (3, 2, 5, 7) and maps.tokens_to_latents.shape == (3, 2, 7, 5)
    torch.testing.assert_close(maps.latents_to_tokens.sum(-1), torch.ones(3, 2, 5))
    torch.testing.assert_close(maps.tokens_to_latents.sum(-1), torch.ones(3, 2, 7))


def test_perceiver_weight_sharing_parameter_counts() -> None:
    """dagger: one cross-attention for all repeats; double dagger: the first has its own, the rest share one."""
    depth, small = 8, dict(img_size=32, embed_dim=64, num_heads=2)  # the relations do not depend on the width
    models = {
        share: bixt.create_model("perceiver_ti_l64_p16_sa5_d8", share_cross=share, **small)
        for share in ("none", "all", "all_but_first")
    }
    cross = num_params(models["none"].encoder.cross_blocks[0])
    assert num_params(models["none"]) - num_params(models["all"]) == (depth - 1) * cross
    assert num_params(models["none"]) - num_params(models["all_but_first"]) == (depth - 2) * cross
    registered = bixt.create_model("perceiver_ti_l64_p16_sa5_d8_share_but_first", **small)
    assert num_params(registered) == num_params(models["all_but_first"])
    x = image(32)
    flops = {share: count_flops(model, x) for share, model in models.items()}
    assert len(set(flops.values())) == 1  # sharing weights does not change the compute


def test_perceiver_shared_weights_are_used_by_every_repeat_and_saved_once(tmp_path) -> None:
    config = PerceiverConfig(img_size=32, embed_dim=64, num_heads=2, depth=4, self_per_cross=1, share_cross="all")
    model = PerceiverNet(config).eval()
    enc = model.encoder
    assert all(enc.cross_block(i) is enc.cross_blocks[0] for i in range(4))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model.forward_features(x)
        enc.cross_blocks[0].mlp_latents.fc2.bias.add_(1.0)  # one shared tensor: changes every repeat's output
        changed = model.forward_features(x)
    assert not torch.allclose(before, changed)
    loaded = bixt.from_pretrained(model.save_pretrained(tmp_path / "perceiver")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), changed)


def test_perceiver_never_updates_the_tokens() -> None:
    model = bixt.create_model("perceiver_ti_l64_p16_sa5_d8", img_size=32, depth=2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_encoder(x)
        torch.testing.assert_close(features.tokens, model.tokenizer(x).tokens)
    with pytest.raises(ValueError, match="one_sided_last"):
        PerceiverConfig(one_sided_last=False)


def test_perceiver_budget_is_in_the_paper_range() -> None:
    """SPEC 2.1: the iterative rows of Table 1(a) sit at about 1.6-2.0 GFLOPs (budget-matched to BiXT's 1.68)."""
    flops = count_flops(bixt.create_model("perceiver_ti_l64_p16_sa5_d8"), image())
    assert 1.5e9 < flops < 2.0e9


def flops_at(model: torch.nn.Module, length: int) -> int:
    return count_flops(model, torch.randint(1, 257, (1, length)))


def test_bixt_sequence_flops_are_linear_and_the_transformer_quadratic() -> None:
    """Three lengths L, 2L, 3L: f(3L) - 2 f(2L) + f(L) = 2 c L^2 for f = a + b L + c L^2. BiXT: c = 0 exactly.
    Transformer: c = depth * 2 * dim (Q K^T and attention x V, n^2 * dim multiply-adds each, per layer)."""
    bixt_model = bixt.create_model("bixt_lra_text")
    transformer = bixt.create_model("transformer_lra_text")
    length = 256
    second = {}
    for name, model in (("bixt", bixt_model), ("transformer", transformer)):
        f1, f2, f3 = (flops_at(model, k * length) for k in (1, 2, 3))
        assert f1 < f2 < f3
        second[name] = f3 - 2 * f2 + f1
    assert second["bixt"] == 0
    config = transformer.config
    assert second["transformer"] == 2 * (config.depth * 2 * config.embed_dim) * length**2
    assert flops_at(bixt_model, 3 * length) < flops_at(transformer, 3 * length)


def test_lra_pairs_share_width_and_depth() -> None:
    """Like for like: the BiXT and Transformer LRA models differ only in the encoder."""
    for task in ("listops", "text", "retrieval"):
        a = bixt.create_model(f"bixt_lra_{task}").config
        b = bixt.create_model(f"transformer_lra_{task}").config
        assert (a.encoder, b.encoder) == ("bixt", "transformer")
        assert {**vars(a), "encoder": None} == {**vars(b), "encoder": None}
