"""Does a trained point-cloud classifier depend on the order of its points? A set model should not.

The check evaluates one checkpoint twice on the same test clouds, once as stored and once with the points of every
cloud randomly permuted, in the same batches and precision, and compares accuracy and logits. One token per point
with no position code makes BiXT permutation-invariant up to floating-point summation order; grouped tokens start
farthest-point sampling from the first point, so a permutation may choose other groups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from bixt.analysis.run_data import model_at, run_config
from bixt.engine.checkpoint import resolve_checkpoint
from bixt.engine.run import build_augment, load_split
from bixt.engine.tasks import Batch


@dataclass(frozen=True)
class PointOrderCheck:
    """Top-1 (%) on the clouds as stored and permuted, and the largest change of any logit between the two."""

    num_items: int
    top1: float
    top1_permuted: float
    max_logit_change: float


def check_point_order(
    checkpoint: str | os.PathLike, *, seed: int = 1, limit: int | None = None, batch_size: int = 256
) -> PointOrderCheck:
    """Evaluate `checkpoint` (a run: its last checkpoint) on its run's evaluation split, as stored and permuted.

    `seed` draws the permutations; `limit` takes the first items only (and never more than the run's eval_limit).
    """
    path = resolve_checkpoint(checkpoint, prefer="last")
    _, config = run_config(path)
    model = model_at(config, path)
    limits = [n for n in (limit, config.data.eval_limit) if n is not None]
    dataset = load_split(config, config.data.eval_split, min(limits) if limits else None)
    if len(dataset) == 0:
        raise ValueError(f"the evaluation split of {config.data.name!r} is empty")
    augment = build_augment(config, train=False, num_classes=0, device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    correct = correct_permuted = 0
    max_change = 0.0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        points = torch.stack([torch.as_tensor(cloud) for cloud, _ in items])
        if points.ndim != 3:
            raise ValueError(
                f"a point-order check needs point clouds (b, p, c); {config.data.name!r} gives {points.shape}"
            )
        labels = torch.as_tensor([int(label) for _, label in items])
        order = torch.argsort(torch.rand(points.shape[:2], generator=generator), dim=1)
        permuted = torch.gather(points, 1, order[..., None].expand_as(points))
        with torch.no_grad():
            logits, logits_permuted = (model(_processed(augment, x, labels)) for x in (points, permuted))
        correct += int((logits.argmax(-1) == labels).sum())
        correct_permuted += int((logits_permuted.argmax(-1) == labels).sum())
        max_change = max(max_change, float((logits - logits_permuted).abs().max()))
    n = len(dataset)
    return PointOrderCheck(n, 100 * correct / n, 100 * correct_permuted / n, max_change)


def _processed(augment, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The points as the run's evaluation fed them to the model (its evaluation-time input processing, if any)."""
    return augment(Batch((points,), labels)).inputs[0] if augment is not None else points
