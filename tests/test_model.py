"""Behaviour of the BiXT image model and its layers beyond the contract: numerics, resolutions, errors, persistence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import bixt
from bixt.layers.attention_paths import attention_path
from bixt.layers.pos_embed import fourier_grid_features_2d

TINY = dict(img_size=32, embed_dim=64, num_heads=2, depth=3, num_latents=8, num_classes=7)


def tiny(name: str = "bixt_ti_l64_p16", **overrides: object) -> bixt.BiXT:
    torch.manual_seed(0)
    model = bixt.create_model(name, **{**TINY, **overrides})
    for p in model.head.parameters():  # a non-zero head, so every parameter has a gradient to compare
        torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.mark.parametrize("name", ["bixt_ti_l64_p16", "bixt_ed256LS_l64_p16s8", "bixt_ti_cnv_l64_d13_p8"])
def test_fused_and_explicit_agree_in_float64_with_gradients(name: str) -> None:
    model = tiny(name).double().eval()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    results = []
    for path in ("explicit", "fused"):
        model.zero_grad()
        with attention_path(path):
            out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (out_e, grads_e), (out_f, grads_f) = results
    torch.testing.assert_close(out_f, out_e, rtol=1e-10, atol=1e-10)
    for n in grads_e:
        torch.testing.assert_close(grads_f[n], grads_e[n], rtol=1e-9, atol=1e-10, msg=n)


def test_any_resolution_divisible_by_the_stride() -> None:
    model = tiny("bixt_ti_l64_p16s8").eval()
    for height, width in [(32, 32), (48, 80), (64, 16)]:
        with torch.no_grad():
            features = model.forward_encoder(torch.randn(2, 3, height, width))
        assert features.tokens.shape == (2, (height // 8) * (width // 8), 64)
        assert torch.isfinite(features.latents).all()


def test_position_encoding_matches_the_formula() -> None:
    feats = fourier_grid_features_2d(3, 5, num_feats=32)
    assert feats.shape == (64, 3, 5)
    row, col = 1, 3
    y = (row + 1) / (3 + 1e-6) * 2 * math.pi
    x = (col + 1) / (5 + 1e-6) * 2 * math.pi
    for i in range(32):
        freq = 10000 ** (2 * (i // 2) / 32)
        trig = math.sin if i % 2 == 0 else math.cos
        assert feats[i, row, col].item() == pytest.approx(trig(y / freq), abs=1e-6)
        assert feats[32 + i, row, col].item() == pytest.approx(trig(x / freq), abs=1e-6)


def test_intermediates_and_attention_maps() -> None:
    model = tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), attention_path("fused"):  # maps are still returned: that request takes the explicit path
        final, inter = model.forward_attention(x)
        features = model.forward_encoder(x)
    assert len(inter.latents) == len(inter.tokens) == len(inter.attention) == 3
    torch.testing.assert_close(final.latents, features.latents)
    torch.testing.assert_close(final.tokens, features.tokens)
    for i, maps in enumerate(inter.attention):
        assert maps.latents_to_tokens.shape == (2, 2, 8, 4)
        torch.testing.assert_close(maps.latents_to_tokens.sum(-1), torch.ones(2, 2, 8))
        if i < 2:
            assert maps.tokens_to_latents.shape == (2, 2, 4, 8)
            torch.testing.assert_close(maps.tokens_to_latents.sum(-1), torch.ones(2, 2, 4))
        else:  # the one-sided last layer does not update tokens
            assert maps.tokens_to_latents is None
    torch.testing.assert_close(inter.tokens[2], inter.tokens[1])


def test_d13_models_drop_their_one_sided_layer_for_dense_use() -> None:
    model = tiny("bixt_ti_l64_d13_p16", depth=4).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model.forward_intermediates(x, output_fmt="NLC", intermediates_only=True)
        model.drop_one_sided_layer()
        features = model.forward_encoder(x)
    assert model.config.depth == 3 and not model.config.one_sided_last
    assert all(layer.cross_block.bidirectional for layer in model.encoder.layers)
    torch.testing.assert_close(features.tokens, before[2])
    with pytest.raises(ValueError, match="no one-sided"):
        model.drop_one_sided_layer()


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model = tiny()
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        model(x).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_initialisation_scheme() -> None:
    model = bixt.create_model("bixt_ti_l64_p16")
    assert not model.head.fc.weight.any() and not model.head.fc.bias.any()
    assert model.encoder.latents.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.encoder.latents.abs().max() <= 2.0
    block = model.encoder.layers[0].cross_block
    assert block.mlp_latents.fc1.bias.std().item() == pytest.approx(1e-6, rel=0.2)
    assert not block.attn.rv_latents.bias.any()
    bound = math.sqrt(6 / (192 + 384))  # xavier-uniform over the whole fused (384, 192) matrix
    assert block.attn.rv_latents.weight.abs().max() <= bound
    assert block.attn.rv_latents.weight.abs().max() > 0.9 * bound


def test_drop_path_rates_are_linear_over_layers() -> None:
    model = bixt.create_model(
        "bixt_ti_l64_p16", drop_path_rate=0.1, depth=5, **{k: TINY[k] for k in ("embed_dim", "num_heads")}
    )
    rates = [layer.cross_block.drop_path.rate for layer in model.encoder.layers]
    assert rates == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    assert [layer.latent_block.drop_path.rate for layer in model.encoder.layers] == pytest.approx(rates)


def test_layer_scale_override() -> None:
    off = bixt.create_model("bixt_ed256LS_l64_p16s8", layer_scale_init=None, depth=2)
    on = bixt.create_model("bixt_ti_l64_p16", layer_scale_init=0.1, depth=2)
    assert not any("gamma" in n for n, _ in off.named_parameters())
    gammas = [p for n, p in on.named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 2 + 4 + 2 + 2  # SA x2 per layer, bi-directional CA 4, one-sided CA 2
    assert all(torch.all(g == 0.1) for g in gammas)


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    model = tiny("bixt_ti_cnv_l64_p16").eval()
    x = torch.randn(2, 3, 32, 32)
    model.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = bixt.from_pretrained(tmp_path / "run").eval()
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_from_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        bixt.from_pretrained(tmp_path)
    tiny().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"format": 1, "architecture": "Nope", "config": {}}')
    with pytest.raises(ValueError, match="unknown architecture 'Nope'"):
        bixt.from_pretrained(tmp_path)


def test_registry_errors_and_listing() -> None:
    assert bixt.list_models("bixt_ti_cnv_*") == [
        "bixt_ti_cnv_l64_d13_p16",
        "bixt_ti_cnv_l64_d13_p4",
        "bixt_ti_cnv_l64_d13_p8",
        "bixt_ti_cnv_l64_p16",
    ]
    with pytest.raises(TypeError, match=r"unknown option.*'embed_dimm'.*valid options.*'embed_dim'"):
        bixt.create_model("bixt_ti_l64_p16", embed_dimm=3)
    with pytest.raises(ValueError, match=r"did you mean.*bixt_ti_l64_p16"):
        bixt.create_model("bixt_ti_l64_p61")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(num_heads=5), "divisible by num_heads"),
        (dict(img_size=40), "multiple of the tokenizer stride"),
        (dict(tokenizer="patch8"), "tokenizer must be one of"),
        (dict(drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\)"),
        (dict(depth=0), "depth must be a positive integer"),
        (dict(layer_scale_init=-1.0), "layer_scale_init must be positive"),
    ],
)
def test_bad_configs_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bixt.create_model("bixt_ti_l64_p16", **overrides)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(3, 32, 32), "expected images of shape"),
        (torch.randn(1, 1, 32, 32), "expected 3 input channels, got 1"),
        (torch.randn(1, 3, 40, 32), "multiples of the tokenizer stride 16, got 40x32"),
    ],
)
def test_bad_inputs_raise(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny()(x)


def test_non_finite_input_is_caught_on_request() -> None:
    model = tiny()
    x = torch.randn(1, 3, 32, 32)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(x, check_finite=True)


def test_reset_classifier_takes_global_pool_only_where_the_config_has_it() -> None:
    model = bixt.create_model("bixt_ti_l64_p16", depth=1, embed_dim=64, num_heads=2)
    model.reset_classifier(3, "")
    assert (model.num_classes, model.config.num_classes, model.config.global_pool) == (3, 3, "")
    points = bixt.create_model("bixt_points_cls", depth=1)
    with pytest.raises(ValueError, match="no pooling to choose"):
        points.reset_classifier(3, "avg")
    points.reset_classifier(3)
    assert (points.num_classes, points.config.num_classes) == (3, 3)
