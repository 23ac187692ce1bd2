"""bixt's image classifiers as timm models: registration on import, data config, layer decay, features, loading.

timm's own contract tests run in tests/timm_contract/ (its unmodified test_models.py); these check what they do not:
bixt's choices (which names, which preprocessing, the official-checkpoint route) and the values behind them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision_cpu_shim  # noqa: F401  (before timm)
from official_reference import OfficialSpec, official_state_dict

import bixt
from bixt.timm_interop import PUBLISHED_WEIGHTS, timm_model_names

timm = pytest.importorskip("timm")
from timm.data import resolve_data_config  # noqa: E402
from timm.optim import create_optimizer_v2  # noqa: E402

SMALL = dict(embed_dim=64, num_heads=2, num_latents=16, depth=2, num_classes=10)


def test_import_bixt_leaves_timm_alone_and_registers_when_timm_is_imported() -> None:
    tests = Path(__file__).resolve().parent
    script = (
        "import sys; import bixt; assert 'timm' not in sys.modules, 'import bixt imported timm'; "
        "import torchvision_cpu_shim, timm; "
        "m = timm.create_model('bixt_ti_l64_p16', depth=1); print(type(m).__name__, m.pretrained_cfg['architecture'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{tests}:{Path(bixt.__file__).parents[1]}", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["BiXT", "bixt_ti_l64_p16"]


def test_only_the_zoo_image_classifiers_are_in_timm() -> None:
    names = timm_model_names()
    assert set(timm.list_models("bixt_*")) == set(names)
    assert len(names) == 24  # SPEC 1.8's 21 published models and the 3 ft384 ones without official constructor
    for other in (
        "vit_ti_p16",
        "sequential_ti_l64_p16",
        "bixt_lra_text",
        "bixt_points_cls",
        "bixt_ti_l64_d13_p16_seg_fpn",
    ):
        assert not timm.is_model(other), other
    assert set(timm.list_models(module="timm_interop")) == set(names)


def test_data_config_follows_the_pretrained_cfg() -> None:
    config = resolve_data_config({}, model=timm.create_model("bixt_ti_l64_p16_ft384"))
    assert config["input_size"] == (3, 384, 384)
    assert config["crop_pct"] == 0.875  # 384 / 0.875 -> resize to 438, crop 384 (the authors' evaluation)
    assert config["interpolation"] == "bicubic"
    assert config["mean"] == (0.485, 0.456, 0.406) and config["std"] == (0.229, 0.224, 0.225)
    assert resolve_data_config({}, model=timm.create_model("bixt_ti_l64_p16"))["input_size"] == (3, 224, 224)


def test_pretrained_cfgs_name_real_modules_paper_licence_and_weights() -> None:
    for name in timm_model_names():
        model = timm.create_model(name, device="meta")
        cfg = model.pretrained_cfg
        state = model.state_dict()
        assert f"{cfg['first_conv']}.weight" in state and f"{cfg['classifier']}.weight" in state, name
        assert cfg["license"] == "apache-2.0" and cfg["paper_ids"] == "arXiv:2402.12138"
        assert cfg["input_size"][1] == (384 if name.endswith("_ft384") else 224), name
        assert PUBLISHED_WEIGHTS.get(name, "no official weights") in cfg["notes"][0], name
    assert not timm.list_models("bixt_*", pretrained=True)  # bixt downloads nothing: no weights source is set


def test_layer_decay_gives_one_learning_rate_scale_per_layer() -> None:
    model = timm.create_model("bixt_ti_l64_p16", depth=4, embed_dim=64, num_heads=2)
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    by_name = {name: scale_of[id(p)] for name, p in model.named_parameters()}
    # stem (tokenizer, latents) = 0.75^5, layer i = 0.75^(4 - i), head = 1
    assert by_name["encoder.latents"] == pytest.approx(0.75**5)
    assert by_name["tokenizer.patch_embed.proj.weight"] == pytest.approx(0.75**5)
    for i in range(4):
        assert by_name[f"encoder.layers.{i}.latent_block.attn.qkv.weight"] == pytest.approx(0.75 ** (4 - i))
    assert by_name["head.fc.weight"] == pytest.approx(1.0)
    assert len(set(by_name.values())) == 6


def test_features_only_gives_token_maps_of_the_layers_that_update_tokens() -> None:
    backbone = timm.create_model("bixt_ti_l64_d13_p16s8", features_only=True, **SMALL | dict(depth=5)).eval()
    assert backbone.feature_info.channels() == [64, 64, 64] and backbone.feature_info.reduction() == [8, 8, 8]
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        maps = backbone(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 8, 6)] * 3
    # layers 1, 2, 3 (layer 4, the one-sided last one, does not update the tokens): the same values as the full model
    full = bixt.create_model("bixt_ti_l64_d13_p16s8", **SMALL | dict(depth=5)).eval()
    full.load_state_dict(backbone.model.state_dict(), strict=False)
    with torch.no_grad():
        _, inter = full.forward_attention(x)
    for tap, layer in zip(maps, (1, 2, 3), strict=True):
        torch.testing.assert_close(tap, inter.tokens[layer].transpose(1, 2).reshape(2, 64, 8, 6))


def test_device_dtype_and_global_pool() -> None:
    model = timm.create_model("bixt_ti_l64_p16", device="meta", dtype=torch.bfloat16, **SMALL)
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("meta", torch.bfloat16)}
    model = timm.create_model("bixt_ti_l64_p16", global_pool="", **SMALL).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 16, 10)  # every latent classified
    model.reset_classifier(3, "avg")
    assert model(x).shape == (2, 3) and model.config.global_pool == "avg"
    with pytest.raises(TypeError, match="not_a_field"):
        timm.create_model("bixt_ti_l64_p16", not_a_field=1)


def _official_checkpoint(path: Path, extra: object = None) -> dict[str, torch.Tensor]:
    state = official_state_dict(OfficialSpec(depth=2, pos_buffer_grid=4), seed=5)
    payload = {"epoch": 3, "arch": "bixt_ti_l64_p16", "state_dict": state, "args": argparse.Namespace(lr=1.0)}
    if extra is not None:
        payload["extra"] = extra
    torch.save(payload, path)
    return state


class _Opaque:  # stands for any arbitrary pickled object
    pass


def test_pretrained_through_timms_file_route_uses_load_official(tmp_path: Path) -> None:
    path = tmp_path / "model_best.pth.tar"
    state = _official_checkpoint(path)
    model = timm.create_model(
        "bixt_ti_l64_p16", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), img_size=64, **SMALL
    ).eval()
    expected = bixt.load_official(bixt.create_model("bixt_ti_l64_p16", img_size=64, **SMALL), state).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="pretrained_cfg_overlay=dict\\(file=PATH\\)"):
        timm.create_model("bixt_ti_l64_p16", pretrained=True)


def test_pretrained_file_route_takes_bixt_layout_and_train_py_style_cfgs(tmp_path: Path) -> None:
    source = timm.create_model("bixt_ti_l64_p16", **SMALL)
    torch.nn.init.normal_(source.head.fc.weight)
    path = tmp_path / "checkpoint-3.pth.tar"  # what timm's train.py saves: this project's key names
    torch.save({"epoch": 3, "state_dict": source.state_dict(), "args": argparse.Namespace(lr=1.0)}, path)
    # train.py --pretrained-path resolves the file into pretrained_cfg itself (and resets custom_load there)
    cfg = dict(timm.models.get_pretrained_cfg("bixt_ti_l64_p16").to_dict(), file=str(path), custom_load=False)
    model = timm.create_model("bixt_ti_l64_p16", pretrained=True, pretrained_cfg=cfg, **SMALL)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_pretrained_file_route_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    _official_checkpoint(path, extra=_Opaque())
    with pytest.raises(ValueError, match="trust_pickle=True"):
        timm.create_model("bixt_ti_l64_p16", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **SMALL)


def test_the_perceiver_baseline_groups_and_prunes_by_repeat() -> None:
    from timm.models import group_parameters

    model = bixt.create_model("perceiver_ti_l64_p16_sa5_d8_share_but_first", self_per_cross=2, **SMALL | dict(depth=4))
    groups = group_parameters(model, model.group_matcher(), reverse=True)
    # stem, then repeat i = its cross-attention (the shared one counts as repeat 1's) and latent blocks 2i, 2i+1
    assert groups["encoder.cross_blocks.0.attn.rv_tokens.weight"] == 1
    assert groups["encoder.cross_blocks.1.attn.rv_tokens.weight"] == 2
    assert groups["encoder.latent_blocks.5.attn.qkv.weight"] == groups["encoder.latent_blocks.4.attn.qkv.weight"] == 3
    assert groups["encoder.latent_blocks.7.attn.qkv.weight"] == 4 and groups["head.fc.weight"] == 5
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        taps = model.eval().forward_intermediates(x, intermediates_only=True)
        assert model.prune_intermediate_layers([2]) == [2]
        (tap,) = model.forward_intermediates(x, indices=[2], intermediates_only=True)
    assert model.encoder.depth == 3 and len(model.encoder.latent_blocks) == 6 and len(model.encoder.cross_blocks) == 2
    torch.testing.assert_close(tap, taps[2])
