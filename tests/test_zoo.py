"""The model zoo against SPEC 1.8: every published name, exact parameter counts, FLOPs and activations.

Costs are counted on the meta device (shapes only, no arithmetic), so the full-resolution figures are cheap to check.
"""

from __future__ import annotations

import pytest
import torch

import bixt
from bixt.layers.attention_paths import attention_path

# name: (parameters, exact?, fvcore GFLOPs, activations in millions or None); from SPEC 1.8.
# Inexact parameter counts are given to 0.01 M there.
ZOO = {
    "bixt_ti_l64_p16": (15_121_192, True, 1.679, 7.87),
    "bixt_ti_l64_p16s8": (15.12e6, False, 4.705, 22.20),
    "bixt_ti_l64_p16s4": (15.12e6, False, 16.809, 79.55),
    "bixt_ti_l64_d13_p16": (16_381_672, True, 1.823, 8.54),
    "bixt_ti_l64_d13_p16s8": (16.38e6, False, 5.110, 24.12),
    "bixt_ti_l64_d13_p16s4": (16.38e6, False, 18.259, 86.43),
    "bixt_ti_l32_p16": (15_115_048, True, 1.297, 5.80),
    "bixt_ti_l32_p16s8": (15.12e6, False, 4.197, 18.78),
    "bixt_ti_l128_p16": (15_133_480, True, 2.472, 12.44),
    "bixt_ti_l128_p16s8": (15.13e6, False, 5.751, 29.49),
    "bixt_ed256_l64_p16": (26_682_088, True, 2.923, 10.49),
    "bixt_ed256_l64_p16s8": (26.68e6, False, 8.142, 29.60),
    "bixt_ed256LS_l64_p16s8": (26_700_008, True, 8.142, 29.60),
    "bixt_ti_l64_p16_ft384": (15.12e6, False, 3.635, 17.13),
    "bixt_ti_l64_p16s8_ft384": (15.12e6, False, 12.528, 59.27),
    "bixt_ti_l64_p16s4_ft384": (15.12e6, False, 48.098, 227.8),
    "bixt_ed256_l64_p16s8_ft384": (26.68e6, False, 21.635, 79.02),
    "bixt_ti_cnv_l64_p16": (15_192_640, True, 1.757, 8.39),
    "bixt_ti_cnv_l64_d13_p16": (16.45e6, False, 1.901, 9.06),
    "bixt_ti_cnv_l64_d13_p8": (16_443_352, True, 5.273, 25.02),
    "bixt_ti_cnv_l64_d13_p4": (16_403_080, True, 18.27, None),
}
# Published weights whose constructors the official code forgot (SPEC 6, bugs 1-3): same as their 224 counterparts.
MISSING_FT384 = {
    "bixt_ti_l64_d13_p16_ft384": "bixt_ti_l64_d13_p16",
    "bixt_ti_l64_d13_p16s8_ft384": "bixt_ti_l64_d13_p16s8",
    "bixt_ed256LS_l64_p16s8_ft384": "bixt_ed256LS_l64_p16s8",
}


def _meta(name: str, **overrides: object) -> torch.nn.Module:
    with torch.device("meta"):
        return bixt.create_model(name, **overrides)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_published_name_is_registered() -> None:
    names = set(bixt.list_models("bixt_*"))
    assert set(ZOO) | set(MISSING_FT384) <= names


@pytest.mark.parametrize("name", sorted(ZOO))
def test_parameter_counts(name: str) -> None:
    expected, exact, _, _ = ZOO[name]
    count = _params(_meta(name))
    if exact:
        assert count == expected
    else:
        assert round(count / 1e6, 2) == round(expected / 1e6, 2)


@pytest.mark.parametrize("name", sorted(MISSING_FT384))
def test_forgotten_ft384_models_match_their_224_parents(name: str) -> None:
    model, parent = _meta(name), _meta(MISSING_FT384[name])
    assert model.config.img_size == 384
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in parent.state_dict().items()}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_flops_and_activations_in_the_paper_convention(name: str) -> None:
    _, _, gflops, mact = ZOO[name]
    model = _meta(name)
    cost = bixt.count_cost(model, model.example_input())
    # matmul/conv-only counting sits ~0.5% under fvcore, which adds norms and activations
    assert cost.flops / 1e9 == pytest.approx(gflops, rel=0.01)
    if mact is not None:
        assert cost.activations / 1e6 == pytest.approx(mact, rel=0.02)


def test_cost_does_not_depend_on_the_attention_path() -> None:
    model = _meta("bixt_ti_l64_d13_p16")
    x = model.example_input()
    costs = []
    for path in ("explicit", "fused"):
        with attention_path(path):
            costs.append(bixt.count_cost(model, x))
    assert costs[0] == costs[1]
    assert costs[0].flops / 1e9 == pytest.approx(1.82, rel=0.01)
    assert costs[0].activations / 1e6 == pytest.approx(8.54, rel=0.02)


def test_cost_is_linear_in_tokens() -> None:
    # SPEC 1.9: per bi-directional layer 11 N D^2 + 3 M N D on the token side; doubling N twice adds equal steps.
    model = _meta("bixt_ti_l64_p16")
    flops = [bixt.count_flops(model, torch.empty(1, 3, s, s, device="meta")) for s in (224, 448, 672)]
    tokens = [196, 784, 1764]
    slope_1 = (flops[1] - flops[0]) / (tokens[1] - tokens[0])
    slope_2 = (flops[2] - flops[1]) / (tokens[2] - tokens[1])
    assert slope_1 == pytest.approx(slope_2, rel=1e-9)


def test_count_flops_on_real_tensors_matches_meta() -> None:
    model = bixt.create_model("bixt_ti_l64_p16", img_size=64, depth=2)
    meta = _meta("bixt_ti_l64_p16", img_size=64, depth=2)
    assert bixt.count_flops(model, model.example_input()) == bixt.count_flops(meta, meta.example_input())
    assert bixt.count_activations(model, model.example_input()) == bixt.count_activations(meta, meta.example_input())
