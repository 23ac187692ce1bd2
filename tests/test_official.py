"""Official checkpoints: parity with the authors' reference vectors, the converter on every variant, safe loading."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from official_reference import OfficialSpec, official_forward, official_state_dict
from safetensors.torch import load_file

import bixt
from bixt.convert import load_official

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCES = {
    # file stem -> registry name it was made from (overrides come from its json)
    "ref_p16": "bixt_ti_l64_p16",
    "ref_p16s8": "bixt_ti_l64_p16s8",
}


def _reference(stem: str) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(REFERENCE_DIR / f"{stem}.safetensors"), json.loads((REFERENCE_DIR / f"{stem}.json").read_text())


def _model_for(stem: str, cfg: dict) -> bixt.BiXT:
    keys = ("img_size", "embed_dim", "num_heads", "depth", "num_latents", "num_classes")
    return bixt.create_model(REFERENCES[stem], **{k: cfg[k] for k in keys}).eval()


def _state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_reference_vectors_are_reproduced(stem: str) -> None:
    tensors, cfg = _reference(stem)
    model = load_official(_model_for(stem, cfg), _state(tensors))
    with torch.no_grad():
        latents = model.forward_features(tensors["x"])
        pre_logits = model.forward_head(latents, pre_logits=True)
        logits = model.forward_head(latents)
    torch.testing.assert_close(latents, tensors["latents"], atol=1e-5, rtol=0)
    torch.testing.assert_close(pre_logits, tensors["pre_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, tensors["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_functional_reference_matches_the_authors_code(stem: str) -> None:
    # Anchors the independent functional forward used below for the variants the vectors do not cover.
    tensors, cfg = _reference(stem)
    spec = OfficialSpec(
        embed_dim=cfg["embed_dim"],
        num_heads=cfg["num_heads"],
        depth=cfg["depth"],
        num_latents=cfg["num_latents"],
        num_classes=cfg["num_classes"],
        tokenizer={"patch16": "patch16", "patch16_stride8": "patch16_s8"}[cfg["tokenizer"]],
    )
    latents, pre_logits, logits = official_forward(_state(tensors), tensors["x"], spec)
    torch.testing.assert_close(latents, tensors["latents"], atol=1e-5, rtol=0)
    torch.testing.assert_close(pre_logits, tensors["pre_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, tensors["logits"], atol=1e-5, rtol=0)


VARIANTS = {
    # registry name: (official layout, input size)
    "bixt_ti_l64_p16s4": (OfficialSpec(tokenizer="patch16_s4", pos_buffer_grid=12), 48),
    "bixt_ti_l64_d13_p16": (OfficialSpec(depth=4, pos_buffer_grid=4), 64),
    "bixt_ed256LS_l64_p16s8": (OfficialSpec(tokenizer="patch16_s8", layer_scale=True, pos_buffer_grid=8), 64),
    "bixt_ed256LS_l64_p16s8_ft384": (OfficialSpec(tokenizer="patch16_s8", layer_scale=True), 96),
    "bixt_ti_l64_p16_ft384": (OfficialSpec(), 96),  # adaptive encoding: no stored buffer, grid from the input
    "bixt_ti_cnv_l64_p16": (OfficialSpec(tokenizer="conv16", pos_buffer_grid=4), 64),
    "bixt_ti_cnv_l64_d13_p8": (OfficialSpec(tokenizer="conv8", depth=2, pos_buffer_grid=8), 64),
    "bixt_ti_cnv_l64_d13_p4": (OfficialSpec(tokenizer="conv4", depth=2, pos_buffer_grid=16), 64),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_load_and_match_the_functional_reference(name: str) -> None:
    spec, size = VARIANTS[name]
    model = bixt.create_model(
        name,
        img_size=size,
        embed_dim=spec.embed_dim,
        num_heads=spec.num_heads,
        depth=spec.depth,
        num_latents=spec.num_latents,
        num_classes=spec.num_classes,
    ).eval()
    state = official_state_dict(spec, seed=3)
    load_official(model, state)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    latents, pre_logits, logits = official_forward(state, x, spec)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(features, latents, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.forward_head(features, pre_logits=True), pre_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(x), logits, atol=1e-5, rtol=0)


def test_full_size_official_layout_has_434_entries_and_maps_every_key() -> None:
    spec = OfficialSpec(embed_dim=192, num_heads=6, depth=12, num_latents=64, num_classes=1000, pos_buffer_grid=14)
    state = official_state_dict(spec)
    assert len(state) == 434
    assert sum(v.numel() for k, v in state.items() if k != "fourier_pos_encode.pos") == 15_121_192
    model = load_official(bixt.create_model("bixt_ti_l64_p16"), state)
    torch.testing.assert_close(model.encoder.latents, state["latents"])
    torch.testing.assert_close(model.head.fc.weight, state["head.weight"])


def _small() -> tuple[bixt.BiXT, dict[str, torch.Tensor]]:
    spec = OfficialSpec(depth=2, pos_buffer_grid=4)
    model = bixt.create_model(
        "bixt_ti_l64_p16", img_size=64, embed_dim=64, num_heads=2, depth=2, num_latents=16, num_classes=10
    )
    return model, official_state_dict(spec)


def test_wrapper_prefixes_are_stripped() -> None:
    model, state = _small()
    wrapped = {f"module._orig_mod.{k}": v for k, v in state.items()}
    load_official(model, wrapped)
    torch.testing.assert_close(model.encoder.latents, state["latents"])


def test_missing_and_unexpected_keys_are_named() -> None:
    model, state = _small()
    state.pop("blocks.0.self_attention_latents.attn.qkv.weight")
    state["blocks.0.cross_attention_latents_token.ls1_lat.gamma"] = torch.ones(64)
    with pytest.raises(ValueError) as err:
        load_official(model, state)
    message = str(err.value)
    assert "encoder.layers.0.latent_block.attn.qkv.weight" in message
    assert "encoder.layers.0.cross_block.ls1_latents.gamma" in message


def test_shape_mismatch_is_named() -> None:
    model, state = _small()
    state["head.weight"] = torch.zeros(1000, 64)
    state["head.bias"] = torch.zeros(1000)
    with pytest.raises(ValueError, match=r"head\.fc\.weight: checkpoint \(1000, 64\)"):
        load_official(model, state)


def test_a_modified_fourier_buffer_is_refused() -> None:
    model, state = _small()
    state["fourier_pos_encode.pos"] = state["fourier_pos_encode.pos"] + 0.1
    with pytest.raises(ValueError, match="Fourier"):
        load_official(model, state)


class _Opaque:  # stands for any arbitrary pickled object
    pass


def test_timm_checkpoint_file_loads_without_unpickling(tmp_path: Path) -> None:
    model, state = _small()
    path = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 3, "arch": "bixt_ti_l64_p16", "state_dict": state, "args": argparse.Namespace(lr=1.0)}, path)
    load_official(model, path)
    torch.testing.assert_close(model.encoder.latents, state["latents"])


def test_arbitrary_pickles_need_the_trust_flag(tmp_path: Path) -> None:
    model, state = _small()
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": state, "extra": _Opaque()}, path)
    with pytest.raises(ValueError, match="trust_pickle=True"):
        load_official(model, path)
    load_official(model, path, trust_pickle=True)
    torch.testing.assert_close(model.encoder.latents, state["latents"])


def test_safetensors_state_dict_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model, state = _small()
    save_file(state, tmp_path / "official.safetensors")
    load_official(model, tmp_path / "official.safetensors")
    torch.testing.assert_close(model.encoder.latents, state["latents"])
