"""Byte encoding, IMDB reading / dedup / split, and Austen passage pairs (on small synthetic novels)."""

from __future__ import annotations

import json

import pytest

from bixt.data import DataFormatError
from bixt.data.retrieval import austen_pairs, chapters_of, passages_of, split_passages
from bixt.data.text import decode_bytes, encode_bytes, imdb_split, read_imdb_reviews


def test_byte_encoding_shifts_by_one_and_truncates():
    ids = encode_bytes("hé!", max_length=None)
    assert ids.tolist() == [b + 1 for b in "hé!".encode()]
    assert int(ids.min()) >= 1  # 0 stays free for padding
    assert encode_bytes("abcdef", max_length=4).tolist() == [98, 99, 100, 101]
    assert decode_bytes(encode_bytes("hé!")) == "hé!"


def test_imdb_dedup_and_fixed_split(tmp_path):
    reviews = [{"t": f"review {i % 90}", "s": i % 2} for i in range(100)]  # 10 duplicate texts
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps(reviews))
    texts, labels = read_imdb_reviews(path)
    assert len(texts) == 90 and len(set(texts)) == 90
    splits = {s: imdb_split(texts, labels, s, max_length=8) for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == 90
    seen = [set(d.texts) for d in splits.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    again = imdb_split(texts, labels, "test", max_length=8)
    assert again.texts == splits["test"].texts  # the split is fixed by its seed
    ids, _ = splits["train"][0]
    assert ids.shape[0] <= 8


def test_the_first_items_of_an_imdb_split_hold_both_classes():
    # The real file lists every negative review first; a prefix (data.train_limit) must still be a random sample.
    texts, labels = [f"review {i}" for i in range(1000)], [int(i >= 500) for i in range(1000)]
    for split in ("train", "test"):
        first = imdb_split(texts, labels, split, max_length=8).labels[:40]
        assert 8 <= sum(first) <= 32, (split, first)


def test_imdb_malformed_entry_names_file(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps([{"t": "ok", "s": 1}, {"t": "bad", "s": 7}]))
    with pytest.raises(DataFormatError, match=r"reviews.json: entry 1 is not"):
        read_imdb_reviews(path)
    path.write_text('[{"t": "cut')
    with pytest.raises(DataFormatError, match=r"reviews.json: not valid JSON"):
        read_imdb_reviews(path)


def _novel(tag: str, chapters: int) -> list[str]:
    lines = [f"{tag.upper()}", "", "By Jane Austen", ""]
    for c in range(chapters):
        lines += [f"CHAPTER {c + 1}", ""]
        for p in range(3):
            lines += [f"{tag} chapter {c} paragraph {p} first line", f"{tag} second line {c}.{p}", ""]
    return lines


def test_chapters_and_passages():
    chapters = chapters_of(_novel("emma", 4))
    assert len(chapters) == 4 and not any(line.startswith("CHAPTER") for ch in chapters for line in ch)
    passages = passages_of(chapters[0], passage_chars=120)
    assert all(len(p) <= 120 for p in passages) and len(passages) >= 2
    assert "paragraph 0 first line emma second line 0.0" in passages[0]  # lines of a paragraph are joined


def test_austen_pairs_split_by_chapter_without_leaks(tmp_path):
    books = {name: _novel(name, 10) for name in ("emma", "persuasion", "mansfieldpark")}
    path = tmp_path / "books.json"
    path.write_text(json.dumps(books))
    per_split = {s: set(split_passages(books, s, passage_chars=100)[0]) for s in ("train", "val", "test")}
    assert per_split["train"] and per_split["val"] and per_split["test"]
    assert not (per_split["train"] & per_split["val"] or per_split["train"] & per_split["test"])
    chapter_of = {
        s: {p.split(" chapter ")[0] + p.split(" chapter ")[1].split()[0] for p in per_split[s]} for s in per_split
    }
    assert not (chapter_of["train"] & chapter_of["test"])  # whole chapters go to one split

    ds = austen_pairs(path, "val", num_pairs=40, passage_chars=100)
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels.count(1) == labels.count(0) == 20
    for i in range(len(ds)):
        (a, b), label = ds[i]
        same = decode_bytes(a).split()[0] == decode_bytes(b).split()[0]  # passages start with their novel's tag
        assert same == bool(label)
        assert decode_bytes(a) in per_split["val"]
    again = austen_pairs(path, "val", num_pairs=40, passage_chars=100)
    assert again.pairs == ds.pairs
