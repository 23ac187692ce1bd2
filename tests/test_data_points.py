"""Point clouds (hdf5 fixtures), image point sets, multi-object canvases and point scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bixt.data import DataFormatError, load_dataset
from bixt.data.canvases import canvas_split
from bixt.data.images import MNIST_CLASSES, ImageTensorDataset
from bixt.data.points import ImagePointSetDataset, PointSceneDataset

h5py = pytest.importorskip("h5py")


def _write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def test_modelnet40_hdf5(tmp_path):
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(n, 2048, 3)).astype(np.float32) for n in (3, 2)]
    for i, d in enumerate(data):
        _write_h5(tmp_path / f"ply_data_train{i}.h5", data=d, label=np.arange(len(d), dtype=np.uint8)[:, None] + 30)
    ds = load_dataset("modelnet40", split="train", root=tmp_path)
    assert len(ds) == 5
    points, label = ds[3]
    assert points.shape == (1024, 3) and points.dtype == torch.float32 and label == 30
    assert torch.equal(points, torch.from_numpy(data[1][0, :1024]))

    _write_h5(tmp_path / "ply_data_train2.h5", data=data[1], label=np.full((2, 1), 40, np.uint8))
    with pytest.raises(DataFormatError, match=r"ply_data_train2.h5: label 40 out of range"):
        load_dataset("modelnet40", split="train", root=tmp_path)
    (tmp_path / "ply_data_train2.h5").write_bytes(b"\x89HDF garbage")
    with pytest.raises(DataFormatError, match=r"ply_data_train2.h5: not a readable hdf5 file"):
        load_dataset("modelnet40", split="train", root=tmp_path)


def test_shapenet_part_hdf5(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 2048, 3)).astype(np.float32)
    pid = rng.integers(0, 50, size=(2, 2048)).astype(np.uint8)
    _write_h5(tmp_path / "ply_data_val0.h5", data=data, label=np.array([[4], [15]], np.uint8), pid=pid)
    ds = load_dataset("shapenet-part", split="val", root=tmp_path, num_points=512)
    points, parts, category = ds[1]
    assert points.shape == (512, 3) and parts.shape == (512,) and category == 15
    assert torch.equal(parts, torch.from_numpy(pid[1, :512]).long())
    _write_h5(tmp_path / "ply_data_val0.h5", data=data, label=np.array([[4], [15]], np.uint8))
    with pytest.raises(DataFormatError, match=r"ply_data_val0.h5: missing dataset\(s\) \['pid'\]"):
        load_dataset("shapenet-part", split="val", root=tmp_path)


def _digits(n: int = 6) -> ImageTensorDataset:
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        images[i, 4 + i : 10 + i, 8:20] = 100 + 20 * i  # a bright bar, a different place and level per image
    return ImageTensorDataset(images, torch.arange(n) % 10, MNIST_CLASSES)


def test_image_point_sets_sample_foreground_deterministically():
    source = _digits()
    ds = ImagePointSetDataset(source, num_points=100, seed=7)
    points, label = ds[2]
    assert points.shape == (100, 3) and label == 2
    assert torch.allclose(points[:, 2], torch.full((100,), 140 / 255))  # only foreground pixels
    rows = ((1 - points[:, 1]) / 2 * 27).round()
    cols = ((points[:, 0] + 1) / 2 * 27).round()
    assert rows.min() >= 6 and rows.max() <= 11 and cols.min() >= 8 and cols.max() <= 19
    assert len({tuple(p.tolist()) for p in points}) == 72  # 6x12 foreground pixels, all used before repeating
    assert torch.equal(points, ImagePointSetDataset(source, num_points=100, seed=7)[2][0])
    assert not torch.equal(points, ImagePointSetDataset(source, num_points=100, seed=8)[2][0])


def test_canvases_labels_match_pixels_and_regenerate(tmp_path):
    source = _digits()
    ds = canvas_split(source, "toy", "train", tmp_path, num_examples=8, canvas_size=40, items=(2, 3))
    for i in range(len(ds)):
        image, labels = ds[i]
        assert image.shape == (1, 40, 40) and labels.shape == (40, 40)
        foreground = image[0] > 64 / 255
        assert torch.equal(labels > 0, foreground)
        present = set(labels.unique().tolist()) - {0}
        used = {int(source.targets[j]) + 1 for j in ds.recipes["index"][i] if j >= 0}
        assert present <= used and present
    again = canvas_split(source, "toy", "train", tmp_path / "fresh", num_examples=8, canvas_size=40, items=(2, 3))
    for i in range(len(ds)):
        assert torch.equal(ds[i][0], again[i][0]) and torch.equal(ds[i][1], again[i][1])

    scenes = PointSceneDataset(ds, num_points=64, seed=1)
    points, point_labels = scenes[0]
    image, labels = ds[0]
    rows = ((1 - points[:, 1]) / 2 * 39).round().long()
    cols = ((points[:, 0] + 1) / 2 * 39).round().long()
    assert torch.equal(point_labels, labels[rows, cols] - 1)  # each point carries the class of its pixel
    assert torch.allclose(points[:, 2], image[0, rows, cols])
