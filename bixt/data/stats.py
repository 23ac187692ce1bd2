"""Per-channel normalisation statistics of an image data set, computed once from its training split and stored."""

from __future__ import annotations

import json
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


def normalisation_stats(name: str, cache_dir: str | Path | None = None) -> dict[str, list[float]]:
    """Mean and std per channel of the training split of image set ``name``, cached in ``<cache>/stats/``."""
    from bixt.data.registry import load_dataset

    path = resolve_cache_dir(cache_dir) / "stats" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    stats = compute_image_stats(load_dataset(name, split="train", cache_dir=cache_dir))
    write_json_atomic(path, stats)
    return stats
