"""Checks on the real data sets fetched by `bixt data fetch` (make test fetches them first); skipped when absent."""

from __future__ import annotations

import json

import pytest
import torch

import bixt.data.fetch as fetch_module
from bixt.data import fetch_dataset, is_fetched, load_dataset
from bixt.data.collate import collate_padded
from bixt.data.text import decode_bytes, read_imdb_reviews

pytestmark = pytest.mark.network_data


def _require(name: str) -> None:
    if not is_fetched(name):
        pytest.skip(f"{name} is not fetched (run `bixt data fetch {name}`)")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_image_sets_counts_and_balance(name):
    _require(name)
    train, test = load_dataset(name, split="train"), load_dataset(name, split="test")
    assert (len(train), len(test)) == (60_000, 10_000)
    counts = torch.bincount(test.targets, minlength=10)
    assert counts.min() >= 800  # all ten classes, roughly balanced
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.min() >= 0.0 and image.max() <= 1.0 and 0 <= label < 10
    assert image.max() == 1.0  # real digits reach full intensity


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "imdb", "austen"])
def test_second_fetch_downloads_nothing(name, monkeypatch):
    _require(name)

    def no_download(self, workdir, log):
        raise AssertionError("a verified data set must not be downloaded again")

    monkeypatch.setattr(fetch_module.Source, "download", no_download)
    monkeypatch.setattr(fetch_module.NpmSource, "download", no_download)
    monkeypatch.setattr(fetch_module.AptSource, "download", no_download)
    assert not fetch_dataset(name, log=lambda _: None).downloaded


def test_imdb_unique_reviews_and_subset():
    _require("imdb")
    texts, labels = read_imdb_reviews(fetch_module.fetched_dir("imdb") / "reviews.json")
    assert len(texts) == 49_582 and len(set(texts)) == 49_582
    assert 24_000 < sum(labels) < 25_000  # the duplicates removed are spread over both classes
    test = load_dataset("imdb", split="test", limit=64, max_length=1024)
    ids, mask, targets = collate_padded([test[i] for i in range(len(test))])
    assert ids.shape[0] == 64 and ids.shape[1] <= 1024 and set(targets.tolist()) <= {0, 1}
    assert decode_bytes(ids[0][mask[0]]).strip()  # real text comes back


def test_austen_books_and_pairs():
    _require("austen")
    books = json.loads((fetch_module.fetched_dir("austen") / "books.json").read_text())
    assert len(books) == 6 and sum(len(v) for v in books.values()) == 73_422
    pairs = load_dataset("austen", split="test", num_pairs=20)
    labels = [pairs[i][1] for i in range(20)]
    assert labels.count(1) == 10


def test_generated_sets_from_real_digits():
    _require("mnist")
    points, label = load_dataset("mnist-points", split="test")[0]
    assert points.shape == (256, 3) and label == 7  # the first MNIST test digit is a 7
    canvas = load_dataset("mnist-canvas", split="test", num_examples=4)
    image, seg = canvas[0]
    assert image.shape == (1, 64, 64) and seg.max() <= 10 and (seg > 0).any()
