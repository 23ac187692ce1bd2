"""ListOps: grammar, evaluator agreement, limits, determinism and caching; LRA release file readers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bixt.data import DataFormatError, load_dataset
from bixt.data.listops import (
    CLOSE,
    OPERATORS,
    VOCAB,
    ListOpsConfig,
    apply_operator,
    decode,
    depth_of,
    evaluate,
    listops_split,
    sample_expression,
)
from bixt.data.lra import read_labelled_text, read_lra_listops, read_lra_retrieval

SMALL = ListOpsConfig(max_depth=4, max_args=5, min_length=20, max_length=120)


def _max_args(tokens: list[str]) -> int:
    counts, most = [], 0
    for token in tokens:
        if token in OPERATORS:
            counts.append(0)
        elif token == CLOSE:
            most = max(most, counts.pop())
            if counts:
                counts[-1] += 1
        else:
            counts[-1] += 1
    return most


def test_operators_and_evaluator_by_hand():
    assert apply_operator("[MED", [1, 2, 3, 4]) == 2  # mean of the middle two, rounded down
    assert apply_operator("[MED", [9, 1, 5]) == 5
    assert apply_operator("[SM", [7, 8, 9]) == 4
    assert evaluate(["[MAX", "2", "9", "[MIN", "4", "7", "]", "0", "]"]) == 9
    assert evaluate(["[SM", "[MED", "1", "2", "3", "]", "[MIN", "5", "6", "]", "8", "]"]) == (2 + 5 + 8) % 10
    for bad in ("[MAX 2 3", "[MAX ]", "2 3", "[MAX 2 x ]", "] 2"):
        with pytest.raises(ValueError):
            evaluate(bad.split())


def test_generated_examples_obey_grammar_and_labels(tmp_path):
    ds = listops_split("train", tmp_path, num_examples=60, config=SMALL)
    assert len(ds) == 60
    for i in range(len(ds)):
        ids, label = ds[i]
        tokens = decode(ids)
        assert evaluate(tokens) == label  # the evaluator agrees with every generated label
        assert SMALL.min_length <= len(tokens) <= SMALL.max_length
        assert depth_of(tokens) <= SMALL.max_depth
        assert _max_args(tokens) <= SMALL.max_args
        assert tokens[0] in OPERATORS
        assert int(ids.min()) >= 1 and int(ids.max()) < len(VOCAB)  # 0 is reserved for padding
    assert len({ds[i][1] for i in range(len(ds))}) > 3  # labels are not degenerate


def test_default_config_lengths_and_depth():
    rng = random.Random(5)
    for _ in range(3):
        tokens, value = sample_expression(rng, ListOpsConfig())
        assert 500 <= len(tokens) <= 2000 and depth_of(tokens) <= 10 and _max_args(tokens) <= 10
        assert evaluate(tokens) == value


def test_regeneration_is_bit_identical_and_cached(tmp_path):
    first = listops_split("val", tmp_path / "a", num_examples=20, seed=3, config=SMALL)
    again = listops_split("val", tmp_path / "b", num_examples=20, seed=3, config=SMALL)
    assert np.array_equal(first.tokens.numpy(), again.tokens.numpy()) and np.array_equal(first.labels, again.labels)
    cached = list((tmp_path / "a" / "generated").glob("listops-*.npz"))
    assert len(cached) == 1
    reloaded = listops_split("val", tmp_path / "a", num_examples=20, seed=3, config=SMALL)
    assert np.array_equal(reloaded.tokens.numpy(), first.tokens.numpy())
    other = listops_split("test", tmp_path / "a", num_examples=20, seed=3, config=SMALL)
    assert not np.array_equal(other.labels, first.labels) or other.tokens.shape != first.tokens.shape
    assert len(list((tmp_path / "a" / "generated").glob("listops-*.npz"))) == 2


def test_load_dataset_listops_small(tmp_path):
    ds = load_dataset("listops", split="test", cache_dir=tmp_path, num_examples=3, config=SMALL)
    ids, label = ds[0]
    assert ids.dtype.is_floating_point is False and evaluate(decode(ids)) == label


def test_lra_listops_reader_drops_parentheses_and_flags_errors(tmp_path):
    path = tmp_path / "basic_test.tsv"
    path.write_text("Source\tTarget\n( ( [MAX 2 9 ) ( [MIN 4 7 ] ) ] )\t9\n[SM 5 6 ]\t1\n")
    ds = read_lra_listops(path)
    assert len(ds) == 2
    ids, label = ds[0]
    assert decode(ids) == ["[MAX", "2", "9", "[MIN", "4", "7", "]", "]"] and label == 9
    path.write_text("Source\tTarget\n[SM 5 6 ]\t1\n[FOO 1 ]\t3\n")
    with pytest.raises(DataFormatError, match=r"basic_test.tsv:3: unknown ListOps tokens \['\[FOO'\]"):
        read_lra_listops(path)
    path.write_text("Source\tTarget\n[SM 5 6 ]\t12\n")
    with pytest.raises(DataFormatError, match=r"basic_test.tsv:2: label 12 is out of range"):
        read_lra_listops(path)


def test_lra_retrieval_and_text_readers(tmp_path):
    aan = tmp_path / "new_aan_pairs.eval.tsv"
    aan.write_text("1.0\tp1\tp2\tabc\txyz!\n0\tp3\tp4\tq\tr\n")
    ds = read_lra_retrieval(aan, max_length=2)
    (a, b), label = ds[0]
    assert a.tolist() == [ord("a") + 1, ord("b") + 1] and b.tolist() == [ord("x") + 1, ord("y") + 1] and label == 1
    aan.write_text("1\tp1\tp2\tabc\n")
    with pytest.raises(DataFormatError, match=r"new_aan_pairs.eval.tsv:1: expected 5 tab-separated columns"):
        read_lra_retrieval(aan)
    text = tmp_path / "train.tsv"
    text.write_text("0\tgreat film\n1\tbad\n")
    ds = read_labelled_text(text)
    assert len(ds) == 2 and dict(zip(ds.labels, ds.texts, strict=True)) == {0: "great film", 1: "bad"}
    bad = next(i for i in range(2) if ds[i][1] == 1)
    assert ds[bad][0].tolist() == [c + 1 for c in b"bad"]


def test_labelled_text_comes_in_a_seeded_order_not_sorted_by_label(tmp_path):
    # a user's file sorted by label: the first N items (data.train_limit) must still hold both classes
    text = tmp_path / "train.tsv"
    text.write_text("".join(f"{label}\ttext {label} {i}\n" for label in (0, 1) for i in range(20)))
    ds = read_labelled_text(text)
    assert set(ds.labels[:8]) == {0, 1}
    # each text keeps its label
    assert all(t.startswith(f"text {y} ") for t, y in zip(ds.texts, ds.labels, strict=True))
    assert read_labelled_text(text).texts == ds.texts  # the same order every time
    assert read_labelled_text(text, seed=1).texts != ds.texts


def test_generation_does_not_depend_on_worker_count():
    from bixt.data.listops import generate

    one = generate(12, 4, SMALL, workers=1, chunk_size=5)
    two = generate(12, 4, SMALL, workers=2, chunk_size=5)
    assert all(np.array_equal(one[k], two[k]) for k in one)


def test_a_recipe_can_give_the_generator_options_as_a_mapping(tmp_path):
    from dataclasses import asdict

    as_mapping = listops_split("val", tmp_path, num_examples=8, config=asdict(SMALL))
    as_config = listops_split("val", tmp_path, num_examples=8, config=SMALL)
    assert np.array_equal(as_mapping.tokens.numpy(), as_config.tokens.numpy())
    assert max(len(as_mapping[i][0]) for i in range(8)) <= SMALL.max_length
    with pytest.raises(ValueError, match=r"unknown ListOps generator options \['max_len'\]"):
        listops_split("val", tmp_path, num_examples=8, config={"max_len": 100})
