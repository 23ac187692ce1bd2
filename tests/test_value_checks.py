"""The switch for the input checks that read values (bixt.value_checks): on by default, off by one switch."""

from __future__ import annotations

import pytest
import torch

import bixt
import bixt.heads_dense
from bixt.models.encoder import check_token_mask
from bixt.tokenizers.points import GroupedPointTokenizer, NaivePointTokenizer
from bixt.tokenizers.sequence import SequenceTokenizer
from bixt.value_checks import set_value_checks, value_checks, value_checks_enabled


def test_value_checks_are_on_by_default_and_switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIXT_VALUE_CHECKS", raising=False)
    tokens, empty = torch.randn(2, 3, 4), torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match=r"samples \[1\] have no real token"):
        check_token_mask(empty, tokens)
    ids = torch.tensor([[5, 300]])
    sequence = SequenceTokenizer(vocab_size=257, dim=8, max_length=4)
    nan_points = torch.full((1, 4, 3), float("nan"))
    with value_checks(False):
        assert not value_checks_enabled()
        check_token_mask(empty, tokens)  # no error: the values are not read
        sequence.check_input(ids)
        NaivePointTokenizer(dim=8)(nan_points)
        with pytest.raises(ValueError, match="token_mask must be a bool tensor"):  # shapes and dtypes still are
            check_token_mask(empty.int(), tokens)
    assert value_checks_enabled()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 257\).*\[5, 300\]"):
        sequence.check_input(ids)
    set_value_checks(False)
    try:
        assert not value_checks_enabled()
    finally:
        set_value_checks(None)
    monkeypatch.setenv("BIXT_VALUE_CHECKS", "0")
    assert not value_checks_enabled()
    monkeypatch.setenv("BIXT_VALUE_CHECKS", "off")
    with pytest.raises(ValueError, match="BIXT_VALUE_CHECKS must be 0"):
        value_checks_enabled()
    with pytest.raises(TypeError, match="True, False or None"):
        set_value_checks("no")  # type: ignore[arg-type]


def test_grouped_tokenizer_names_short_clouds_only_when_checks_are_on() -> None:
    tokenizer = GroupedPointTokenizer(dim=8, num_groups=4, group_size=4)
    points, mask = torch.rand(2, 6, 3), torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    with pytest.raises(ValueError, match=r"samples \[1\] have \[2\]"):
        tokenizer(points, mask)
    with pytest.raises(ValueError, match="at least 4 points"):  # too few points in the batch: no values needed
        tokenizer(points[:, :3], None)


def test_part_segmentation_checks_category_values_once_per_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    model = bixt.create_model("bixt_points_partseg", depth=1, embed_dim=32, num_heads=2).eval()
    points, category = model.example_input(2)
    calls = []
    real = bixt.heads_dense.can_check_values
    monkeypatch.setattr(bixt.heads_dense, "can_check_values", lambda t: calls.append(t) or real(t))
    model(points, category)
    assert len(calls) == 1
    with pytest.raises(ValueError, match=r"object categories must lie in \[0, 16\)"):
        model(points, torch.tensor([0, 16]))
