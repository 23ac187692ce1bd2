"""IDX reading/validation, MNIST-style splits, image folders, and the errors bad files must raise."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from bixt.data import DataFormatError, load_dataset, read_idx, write_idx
from bixt.data.images import MNIST_CLASSES, ImageFolderDataset, load_idx_split


def _write_split(directory, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_and_split(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    _write_split(tmp_path, "t10k", images, labels, gz)
    ds = load_idx_split(tmp_path, "test", MNIST_CLASSES)
    assert len(ds) == 7
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(images[3]).float().div(255).unsqueeze(0))
    assert y == int(labels[3])


def test_idx_other_dtypes_roundtrip(tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    write_idx(tmp_path / "a.idx", a)
    b = read_idx(tmp_path / "a.idx")
    assert b.dtype == np.int32 and np.array_equal(a, b)


def test_truncated_idx_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte: truncated"):
        read_idx(path)


def test_wrong_magic_names_file(tmp_path):
    path = tmp_path / "bad-labels"
    path.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"\x00\x01\x02")
    with pytest.raises(DataFormatError, match=r"bad-labels: wrong magic number"):
        read_idx(path)


def test_corrupted_gzip_names_file(tmp_path):
    path = tmp_path / "x-ubyte.gz"
    payload = gzip.compress(b"\x00\x00\x08\x01" + (1000).to_bytes(4, "big") + bytes(1000))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataFormatError, match=r"x-ubyte.gz: corrupted or truncated gzip"):
        read_idx(path)


def test_label_out_of_range_and_count_mismatch(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    _write_split(tmp_path, "train", images, np.array([1, 12, 3], np.uint8), gz=False)
    with pytest.raises(DataFormatError, match=r"train-labels-idx1-ubyte: label 12 at index 1 is out of range"):
        load_idx_split(tmp_path, "train", MNIST_CLASSES)
    _write_split(tmp_path, "train", images, np.array([1, 2], np.uint8), gz=False)
    with pytest.raises(DataFormatError, match=r"train-labels-idx1-ubyte: .* labels for 3 images"):
        load_idx_split(tmp_path, "train", MNIST_CLASSES)


def test_image_folder_reads_and_flags_unreadable(tmp_path):
    from PIL import Image

    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (12, 10), (value, i, 0)).save(tmp_path / cls / f"{i}.png")
    ds = ImageFolderDataset(tmp_path, image_size=8, verify=True)
    assert ds.classes == ("cat", "dog") and len(ds) == 4
    dog = next(i for i, (path, _) in enumerate(ds.samples) if path.parent.name == "dog")
    x, y = ds[dog]
    assert x.shape == (3, 8, 8) and y == 1
    assert torch.allclose(x[0], torch.full((8, 8), 200 / 255))

    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataFormatError, match=r"broken.jpg: unreadable image"):
        ImageFolderDataset(tmp_path, verify=True)


def test_load_dataset_missing_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"bixt data fetch mnist"):
        load_dataset("mnist", split="train", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"splits"):
        load_dataset("mnist", split="val", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"unknown data set"):
        load_dataset("no-such-set")


def test_folder_items_are_not_class_by_class(tmp_path):
    """The first items of a folder data set (what data.train_limit keeps) hold every class, in a fixed order."""
    from PIL import Image

    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        for i in range(20):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / cls / f"{i:02d}.png")
    ds = ImageFolderDataset(tmp_path)
    assert {label for _, label in ds.samples[:12]} == {0, 1, 2}
    assert ds.samples == ImageFolderDataset(tmp_path).samples  # the same order on every construction
    assert sorted(ds.samples) == sorted(ImageFolderDataset(tmp_path, seed=1).samples) != ds.samples
