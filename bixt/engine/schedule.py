"""Learning-rate schedule: linear warm-up, then cosine decay to a floor. A pure function of training progress."""

from __future__ import annotations

import math


def cosine_lr(
    epoch: float,
    *,
    base_lr: float,
    epochs: int,
    warmup_epochs: float = 0.0,
    warmup_lr: float = 1e-6,
    min_lr: float = 0.0,
) -> float:
    """The learning rate at fractional ``epoch`` (e.g. step / steps_per_epoch).

    Warm-up rises linearly from ``warmup_lr`` at epoch 0 to ``base_lr`` at ``warmup_epochs``; then a half cosine falls
    from ``base_lr`` to ``min_lr`` at ``epochs``. Warm-up counts inside ``epochs``, as in the paper's recipe. Stepping
    per epoch is ``cosine_lr(floor(epoch), ...)``.
    """
    if epochs <= 0 or not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"need epochs > 0 and 0 <= warmup_epochs <= epochs, got {epochs} and {warmup_epochs}")
    if epoch < warmup_epochs:
        return warmup_lr + (base_lr - warmup_lr) * epoch / warmup_epochs
    decay_epochs = epochs - warmup_epochs
    progress = min(1.0, (epoch - warmup_epochs) / decay_epochs) if decay_epochs > 0 else 1.0
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
