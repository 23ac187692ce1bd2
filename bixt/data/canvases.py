"""Multi-object segmentation canvases from MNIST / Fashion-MNIST (the stand-in for ADE20K-style segmentation).

Each canvas pastes 2-4 items of a source split at random positions (overlaps allowed) on a ``canvas_size`` square.
Where items overlap, the brighter item owns the pixel. The per-pixel class is 0 for background (intensity at most
``threshold``) and 1 + the item's class otherwise: 11 classes in all.

Only the recipe (which items, where) is generated and cached; rendering it is deterministic, so a canvas is
reproduced bit-identically from (seed, index) without storing pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bixt.data.generated import cached_arrays
from bixt.data.images import ImageTensorDataset

NUM_SEG_CLASSES = 11  # background + 10
_RECIPE_VERSION = 1


def make_recipes(
    num_sources: int,
    num_canvases: int,
    *,
    canvas_size: int,
    item_size: int,
    items: tuple[int, int],
    seed: int | list[int],
) -> dict[str, np.ndarray]:
    """Random recipes: ``index`` int32 (N, k_max) source indices (-1 = unused), ``offset`` int16 (N, k_max, 2)."""
    low, high = items
    if not 1 <= low <= high:
        raise ValueError(f"items must be (min, max) with 1 <= min <= max, got {items}")
    if canvas_size < item_size:
        raise ValueError(f"canvas_size {canvas_size} is smaller than the items ({item_size})")
    rng = np.random.default_rng(seed)
    counts = rng.integers(low, high + 1, size=num_canvases)
    index = rng.integers(0, num_sources, size=(num_canvases, high)).astype(np.int32)
    index[np.arange(high)[None, :] >= counts[:, None]] = -1
    offset = rng.integers(0, canvas_size - item_size + 1, size=(num_canvases, high, 2)).astype(np.int16)
    return {"index": index, "offset": offset}


def render(
    images: torch.Tensor, targets: torch.Tensor, index: np.ndarray, offset: np.ndarray, canvas_size: int, threshold: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose one canvas: ``images`` uint8 (N, 1, s, s) -> (canvas uint8 (S, S), labels int64 (S, S))."""
    s = images.shape[-1]
    canvas = torch.zeros(canvas_size, canvas_size, dtype=torch.uint8)
    labels = torch.zeros(canvas_size, canvas_size, dtype=torch.int64)
    for i, (r, c) in zip(index, offset, strict=True):
        if i < 0:
            continue
        item = images[i, 0]
        window = canvas[r : r + s, c : c + s]
        wins = item > window  # the brighter item owns the pixel
        window[wins] = item[wins]
        labels[r : r + s, c : c + s][wins & (item > threshold)] = int(targets[i]) + 1
    labels[canvas <= threshold] = 0
    return canvas, labels


class CanvasDataset(Dataset):
    """Items ``(image float32 (1, S, S) in [0, 1], labels int64 (S, S) in [0, 11))``."""

    def __init__(self, source: ImageTensorDataset, recipes: dict[str, np.ndarray], canvas_size: int, threshold: int):
        self.source, self.recipes, self.canvas_size, self.threshold = source, recipes, canvas_size, threshold

    def __len__(self) -> int:
        return self.recipes["index"].shape[0]

    def render_uint8(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(canvas uint8 (S, S), labels int64 (S, S)) of canvas ``index``."""
        return render(
            self.source.images,
            self.source.targets,
            self.recipes["index"][index],
            self.recipes["offset"][index],
            self.canvas_size,
            self.threshold,
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        canvas, labels = self.render_uint8(index)
        return canvas.float().div(255.0).unsqueeze(0), labels


def canvas_split(
    source: ImageTensorDataset,
    name: str,
    split: str,
    cache_dir: Path,
    *,
    num_examples: int,
    canvas_size: int = 64,
    items: tuple[int, int] = (2, 4),
    threshold: int = 64,
    seed: int = 0,
) -> CanvasDataset:
    """Canvases composed from ``source`` (one split of a fetched set), recipes cached under ``cache_dir``."""
    size = source.images.shape[-1]
    params = {
        "source": name,
        "split": split,
        "num_sources": len(source),
        "num_examples": num_examples,
        "canvas_size": canvas_size,
        "items": list(items),
        "seed": seed,
        "version": _RECIPE_VERSION,
    }
    split_seed = [seed, ("train", "val", "test").index(split)]
    recipes = cached_arrays(
        cache_dir,
        f"{name}-canvas",
        params,
        lambda: make_recipes(
            len(source), num_examples, canvas_size=canvas_size, item_size=size, items=items, seed=split_seed
        ),
    )
    return CanvasDataset(source, recipes, canvas_size, threshold)
