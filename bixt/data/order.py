"""The order in which file-backed data sets list their items."""

from __future__ import annotations

import numpy as np


def seeded_order(items: list, seed: int) -> list:
    """``items`` in a random order fixed by ``seed``: folders and user files often list their items class by class,
    and a subset of the first N items (``data.train_limit``) would otherwise hold the first classes only."""
    return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
