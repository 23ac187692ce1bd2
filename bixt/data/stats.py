"""Per-channel normalisation statistics of an image data set, computed once from its training split and stored."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from bixt.data.cache import resolve_cache_dir, write_json_atomic


def compute_image_stats(dataset: Dataset, *, batch_size: int = 1024) -> dict[str, list[float]]:
    """{'mean': [c], 'std': [c]} over every pixel of ``dataset``'s images (items ``(image (c, h, w), ...)``).

    Accumulates in float64, so the result does not depend on the batch size beyond rounding.
    """
    total = total_sq = None
    count = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images = batch[0].to(torch.float64)  # (b, c, h, w)
        per_channel = images.transpose(0, 1).reshape(images.shape[1], -1)
        total = per_channel.sum(1) if total is None else total + per_channel.sum(1)
        total_sq = per_channel.square().sum(1) if total_sq is None else total_sq + per_channel.square().sum(1)
        count += per_channel.shape[1]
    if total is None:
        raise ValueError("cannot compute statistics of an empty data set")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return {"mean": mean.tolist(), "std": std.tolist()}


def _well_formed(stats: object) -> bool:
    if not isinstance(stats, dict) or not isinstance(stats.get("mean"), list) or not isinstance(stats.get("std"), list):
        return False
    values = [*stats["mean"], *stats["std"]]
    return len(stats["mean"]) == len(stats["std"]) > 0 and all(isinstance(v, float | int) for v in values)


def normalisation_stats(name: str, cache_dir: str | Path | None = None) -> dict[str, list[float]]:
    """Mean and std per channel of the training split of image set ``name``, cached in ``<cache>/stats/`` (a damaged
    cache file is computed again, with a warning)."""
    from bixt.data.registry import load_dataset

    path = resolve_cache_dir(cache_dir) / "stats" / f"{name}.json"
    if path.is_file():
        try:
            stats = json.loads(path.read_text())
            if _well_formed(stats):
                return stats
            raise ValueError("not {'mean': [numbers], 'std': [numbers]} of one length")
        except (OSError, UnicodeDecodeError, ValueError) as error:
            warnings.warn(f"{path} is damaged ({error}); computing the statistics again", stacklevel=2)
    stats = compute_image_stats(load_dataset(name, split="train", cache_dir=cache_dir))
    write_json_atomic(path, stats)
    return stats
