"""Image classification data sets: MNIST / Fashion-MNIST from IDX files, and image folders (the ImageNet layout).

Items are ``(image, label)``: ``image`` a float32 tensor (c, h, w) with values in [0, 1], ``label`` an int.
Normalisation and augmentation are left to :mod:`bixt.data.transforms`, applied batched on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.idx import DataFormatError, read_idx
from bixt.data.order import seeded_order

MNIST_CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# ImageNet's per-channel statistics: what the authors' models were trained with (SPEC 3.1), and timm's default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageTensorDataset(Dataset):
    """Images held in memory as uint8, converted to float in [0, 1] per item.

    ``images``: uint8 (N, h, w) or (N, c, h, w); ``targets``: int64 (N,). Both stay public so that code which
    wants whole batches at once (GPU augmentation, point-set generation) can index them directly.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"images must be uint8 (N, h, w) or (N, c, h, w), got {images.dtype} {tuple(images.shape)}"
            )
        if targets.shape != (images.shape[0],):
            raise ValueError(f"targets must have shape ({images.shape[0]},), got {tuple(targets.shape)}")
        self.images = images if images.ndim == 4 else images.unsqueeze(1)
        self.targets = targets.long()
        self.classes = tuple(classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div(255.0), int(self.targets[index])


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz exists")


def load_idx_split(directory: str | Path, split: str, classes: Sequence[str]) -> ImageTensorDataset:
    """MNIST-style split from ``directory``: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Raises :class:`~bixt.data.idx.DataFormatError` naming the file for a wrong shape, a count mismatch between
    images and labels, or a label outside ``[0, len(classes))``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    prefix = "train" if split == "train" else "t10k"
    image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(f"{image_path}: expected uint8 images (N, h, w), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFormatError(f"{label_path}: {labels.shape} labels for {images.shape[0]} images in {image_path.name}")
    bad = np.flatnonzero(labels.astype(np.int64) >= len(classes))
    if bad.size:
        raise DataFormatError(
            f"{label_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range "
            f"[0, {len(classes)}) ({bad.size} such labels)"
        )
    return ImageTensorDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), classes)


class ImageFolderDataset(Dataset):
    """Images in class folders, ``root/<class>/<image>`` (the ImageNet layout), decoded with PIL.

    Classes are the sorted folder names. Items come in a seeded random order, not class by class, so that the first
    N items (``data.train_limit``) hold every class. Every image is decoded as RGB, resized to ``image_size`` if given
    (so that batches stack), and returned as float (3, h, w) in [0, 1]. ``verify=True`` opens every file once at
    construction so that an unreadable file fails early, naming the file; otherwise it fails when first read.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: int | tuple[int, int] | None = None,
        verify: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder root {self.root} does not exist")
        self.classes = tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir()))
        if not self.classes:
            raise ValueError(f"{self.root}: expected one sub-folder per class, found none")
        self.samples: list[tuple[Path, int]] = [
            (path, label)
            for label, cls in enumerate(self.classes)
            for path in sorted((self.root / cls).rglob("*"))
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        ]
        if not self.samples:
            raise ValueError(f"{self.root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
        self.samples = seeded_order(self.samples, seed)
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.transform = transform
        if verify:
            for path, _ in self.samples:
                self._decode(path)

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, path: Path) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if self.image_size is not None:
                    img = img.resize((self.image_size[1], self.image_size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataFormatError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = self._decode(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label
