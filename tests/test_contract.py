"""The contract every registered model keeps (timm's model test, adapted): run over `bixt.list_models()`.

One test per model, building it once: forward and backward with a gradient for every parameter, then (in eval mode)
head / features / intermediates agreement, then `reset_classifier`.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import bixt
from bixt.models.registry import get_entry

SMALL_IMAGE = 32  # every image tokenizer's stride divides it


def build_small(name: str) -> nn.Module:
    """The registered model, at a small input resolution where it has one (the architecture is unchanged)."""
    config = get_entry(name).config
    fields = {f.name for f in dataclasses.fields(config)}
    overrides = {"img_size": SMALL_IMAGE} if "img_size" in fields and config.img_size > SMALL_IMAGE else {}
    return bixt.create_model(name, **overrides)


def as_tuple(inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def wake_zero_linears(model: nn.Module) -> None:
    # Classifiers start at zero (jax init), which would block every gradient behind them.
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.02)


def class_dim_matches(out: torch.Tensor, num_classes: int) -> bool:
    return out.shape[-1] == num_classes or (out.ndim == 4 and out.shape[1] == num_classes)


@pytest.mark.parametrize("name", bixt.list_models())
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    model = build_small(name)
    inputs = as_tuple(model.example_input(2))
    wake_zero_linears(model)

    out = model(*inputs)
    assert out.shape[0] == 2
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"
    non_finite = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not non_finite, f"non-finite gradients: {non_finite}"

    model.eval()
    with torch.no_grad():
        out = model(*inputs)
        features = model.forward_features(*inputs)
        torch.testing.assert_close(model.forward_head(features), out)
        if isinstance(features, torch.Tensor):  # timm's surface (image classifiers): latents, and token maps
            final, maps = model.forward_intermediates(*inputs)
            torch.testing.assert_close(final, features)
            _, inter = model.forward_attention(*inputs)
            torch.testing.assert_close(inter.latents[-1], features)
            assert len(maps) == len(inter.tokens) == len(inter.attention)
        elif hasattr(model, "forward_intermediates"):
            final, inter = model.forward_intermediates(*inputs)
            torch.testing.assert_close(final.latents, features.latents)
            torch.testing.assert_close(inter.latents[-1], features.latents)
            if features.tokens is not None:
                torch.testing.assert_close(final.tokens, features.tokens)

        if hasattr(model, "reset_classifier"):
            model.reset_classifier(5)
            out = model(*inputs)
            assert class_dim_matches(out, 5), tuple(out.shape)
            assert model.config.num_classes == 5


@pytest.mark.parametrize("name", bixt.list_models())
def test_forward_head_has_pre_logits(name: str) -> None:
    # every model's head can stop before its classifier: a finite per-sample feature tensor other than the logits
    torch.manual_seed(0)
    model = build_small(name).eval()
    inputs = as_tuple(model.example_input(2))
    with torch.no_grad():
        features = model.forward_features(*inputs)
        pre = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    assert pre.shape[0] == 2 and torch.isfinite(pre).all()
    assert pre.shape != logits.shape or not torch.equal(pre, logits)
