"""Point clouds: ModelNet40 / ShapeNetPart in their common hdf5 files, and point sets made from MNIST-style images.

* ModelNet40 (``modelnet40_ply_hdf5_2048``: ``ply_data_{train,test}{i}.h5`` with ``data`` float (N, 2048, 3) and
  ``label`` (N, 1) in [0, 40)). Items ``(points float32 (n, 3), label int)``.
* ShapeNetPart (``hdf5_data``: ``ply_data_{train,val,test}{i}.h5`` with ``data`` (N, 2048, 3), ``label`` (N, 1)
  object category in [0, 16) and ``pid`` (N, 2048) part in [0, 50)). Items
  ``(points float32 (n, 3), parts int64 (n,), category int)``.
* Point folders (your own clouds): ``root/<class>/*.npy``, one array (P, c) per cloud, x y z (or x y) first and
  any per-point features after; classes are the sorted folder names. Items ``(points float32 (n, c), label int)``:
  ``num_points`` points per cloud, drawn without replacement in a random order seeded by (seed, index), repeated
  when a cloud has fewer.
* Image point sets (MNIST / Fashion-MNIST, after PointNet): ``num_points`` foreground pixels (intensity above
  ``threshold``) as (x, y, intensity), x and y in [-1, 1] with y up, intensity in [0, 1]. When an image has fewer
  foreground pixels than ``num_points`` they are repeated in the same random order. Items
  ``(points float32 (n, 3), label int)``.
* Point scenes: the multi-object canvases of :mod:`bixt.data.canvases` sampled as point sets; each point's label
  is the class of the item it came from. Items ``(points float32 (n, 3), labels int64 (n,) in [0, 10))``.

Image point sets and scenes draw their points with a generator seeded by (seed, index): the same item is
reproduced bit-identically without storing it; scene recipes are cached like canvases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.canvases import CanvasDataset
from bixt.data.idx import DataFormatError
from bixt.data.images import ImageTensorDataset
from bixt.data.order import seeded_order


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading hdf5 point clouds needs h5py: pip install 'bixt[data]'") from exc
    return h5py


def _read_h5_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataFormatError(f"{path}: missing dataset(s) {missing}; found {sorted(f.keys())}")
            return {k: np.asarray(f[k]) for k in keys}
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable hdf5 file ({exc})") from exc


def read_point_h5(
    root: str | Path, split: str, *, parts: bool, num_classes: int, num_parts: int = 0
) -> dict[str, np.ndarray]:
    """Concatenate ``root/ply_data_{split}*.h5``; validate shapes and label ranges, naming the file at fault."""
    files = sorted(Path(root).glob(f"ply_data_{split}*.h5"))
    if not files:
        raise FileNotFoundError(f"{root}: no files ply_data_{split}*.h5")
    keys = ("data", "label", "pid") if parts else ("data", "label")
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for path in files:
        arrays = _read_h5_arrays(path, keys)
        data, label = arrays["data"], arrays["label"].reshape(-1).astype(np.int64)
        if data.ndim != 3 or data.shape[-1] != 3 or label.shape[0] != data.shape[0]:
            raise DataFormatError(f"{path}: expected data (N, P, 3) and label (N, 1), got {data.shape}, {label.shape}")
        if label.size and not (label.min() >= 0 and label.max() < num_classes):
            raise DataFormatError(f"{path}: label {int(label.max())} out of range [0, {num_classes})")
        chunks["data"].append(data.astype(np.float32))
        chunks["label"].append(label)
        if parts:
            pid = arrays["pid"].astype(np.int64)
            if pid.shape != data.shape[:2]:
                raise DataFormatError(f"{path}: pid {pid.shape} does not match data {data.shape[:2]}")
            if pid.size and not (pid.min() >= 0 and pid.max() < num_parts):
                raise DataFormatError(f"{path}: part label {int(pid.max())} out of range [0, {num_parts})")
            chunks["pid"].append(pid)
    return {k: np.concatenate(v) for k, v in chunks.items()}


class PointCloudDataset(Dataset):
    """Point clouds held in memory; the first ``num_points`` points of each (the files store them shuffled).

    Items ``(points float32 (n, 3), label int)``, or with ``parts`` ``(points, parts int64 (n,), category int)``.
    """

    def __init__(
        self, points: np.ndarray, labels: np.ndarray, parts: np.ndarray | None = None, *, num_points: int | None
    ) -> None:
        if num_points is not None and not 1 <= num_points <= points.shape[1]:
            raise ValueError(f"num_points must be in [1, {points.shape[1]}], got {num_points}")
        n = points.shape[1] if num_points is None else num_points
        self.points = torch.from_numpy(np.ascontiguousarray(points[:, :n]))
        self.labels = torch.from_numpy(labels)
        self.parts = None if parts is None else torch.from_numpy(np.ascontiguousarray(parts[:, :n]))

    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, index: int) -> tuple:
        if self.parts is None:
            return self.points[index], int(self.labels[index])
        return self.points[index], self.parts[index], int(self.labels[index])


def modelnet40(root: str | Path, split: str, *, num_points: int | None = 1024) -> PointCloudDataset:
    """ModelNet40 from its hdf5 release; split 'train' or 'test'."""
    arrays = read_point_h5(root, split, parts=False, num_classes=40)
    return PointCloudDataset(arrays["data"], arrays["label"], num_points=num_points)


def shapenet_part(root: str | Path, split: str, *, num_points: int | None = 2048) -> PointCloudDataset:
    """ShapeNetPart from its hdf5 release; split 'train', 'val' or 'test'."""
    arrays = read_point_h5(root, split, parts=True, num_classes=16, num_parts=50)
    return PointCloudDataset(arrays["data"], arrays["label"], arrays["pid"], num_points=num_points)


class PointFolderDataset(Dataset):
    """Point clouds stored one per ``.npy`` file in class folders: ``root/<class>/<cloud>.npy``, arrays (P, c).

    Items come in a seeded random order, not class by class (see ``seeded_order``). Files are read when their item
    is; a file that is not a 2-D float array with the first item's number of channels raises DataFormatError naming
    it (every cloud of a batch must have the same channels).
    """

    def __init__(self, root: str | Path, *, num_points: int = 1024, seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"point folder root {self.root} does not exist")
        if num_points < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.classes = tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir()))
        self.samples = [
            (path, label) for label, cls in enumerate(self.classes) for path in sorted((self.root / cls).glob("*.npy"))
        ]
        if not self.samples:
            raise ValueError(f"{self.root}: expected class folders of point clouds (<class>/*.npy), found none")
        self.samples = seeded_order(self.samples, seed)
        self.num_points, self.seed = num_points, seed
        self.channels = self._read(self.samples[0][0], channels=None).shape[1]

    @staticmethod
    def _read(path: Path, channels: int | None) -> np.ndarray:
        try:
            cloud = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{path}: not a readable .npy array ({exc})") from exc
        if cloud.ndim != 2 or cloud.shape[0] < 1 or cloud.shape[1] < 2 or not np.issubdtype(cloud.dtype, np.number):
            raise DataFormatError(
                f"{path}: expected a numeric array (points, channels >= 2), got {cloud.dtype} {cloud.shape}"
            )
        if channels is not None and cloud.shape[1] != channels:
            raise DataFormatError(
                f"{path}: {cloud.shape[1]} channels per point, but {channels} in the first cloud of the folder"
            )
        return cloud

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        cloud = self._read(path, self.channels)
        order = np.random.default_rng([self.seed, index]).permutation(cloud.shape[0])
        chosen = order[np.arange(self.num_points) % order.size]
        return torch.from_numpy(cloud[chosen].astype(np.float32)), label


def _pixel_points(
    image: torch.Tensor, num_points: int, threshold: int, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    """Sample pixels of a uint8 (h, w) image: (points float32 (n, 3) as (x, y, intensity), flat pixel indices)."""
    h, w = image.shape
    flat = image.reshape(-1).numpy()
    candidates = np.flatnonzero(flat > threshold)
    if candidates.size == 0:  # a blank image: sample from all pixels rather than fail
        candidates = np.arange(flat.size)
    order = rng.permutation(candidates)
    chosen = order[np.arange(num_points) % order.size]
    rows, cols = np.divmod(chosen, w)
    x = cols / (w - 1) * 2 - 1
    y = 1 - rows / (h - 1) * 2
    points = np.stack([x, y, flat[chosen] / 255.0], axis=1).astype(np.float32)
    return torch.from_numpy(points), chosen


class ImagePointSetDataset(Dataset):
    """Images as 2-D point sets; items ``(points float32 (n, 3), label int)``."""

    def __init__(self, source: ImageTensorDataset, *, num_points: int = 256, threshold: int = 0, seed: int = 0):
        if num_points < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.source, self.num_points, self.threshold, self.seed = source, num_points, threshold, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, index])
        points, _ = _pixel_points(self.source.images[index, 0], self.num_points, self.threshold, rng)
        return points, int(self.source.targets[index])


class PointSceneDataset(Dataset):
    """Multi-object canvases as point sets; items ``(points float32 (n, 3), labels int64 (n,) in [0, 10))``."""

    def __init__(self, canvases: CanvasDataset, *, num_points: int = 512, seed: int = 0) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.canvases, self.num_points, self.seed = canvases, num_points, seed

    def __len__(self) -> int:
        return len(self.canvases)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        canvas, pixel_labels = self.canvases.render_uint8(index)
        rng = np.random.default_rng([self.seed, index])
        points, chosen = _pixel_points(canvas, self.num_points, self.canvases.threshold, rng)
        # Pixel labels are 1 + class on foreground; points are drawn from the foreground only.
        labels = (pixel_labels.reshape(-1)[torch.from_numpy(chosen)] - 1).clamp_(min=0)
        return points, labels
