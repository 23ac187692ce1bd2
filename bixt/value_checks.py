"""The one switch for the checks that read input values: on by default, off for the last bit of speed.

A few checks of a model's inputs look at the values, not just shapes and dtypes, and so need them on the host (on a
GPU, a device-to-host synchronisation that stalls the queue of kernels): that every sample keeps a real token
(`bixt.models.encoder.check_token_mask`), that sequence ids lie in the vocabulary (`SequenceTokenizer`), that point
clouds are finite and large enough for their groups (`bixt.tokenizers.points`), and that object categories are valid
(`PartSegmentationHead`). Without them a bad batch fails late and obscurely (a device-side assert, or NaN from a
softmax over nothing), so they are on by default. Turn them off for trusted data with ``set_value_checks(False)``,
``with value_checks(False):`` or ``BIXT_VALUE_CHECKS=0``. Shape and dtype checks always run; so does an explicit
``check_finite=True``.

Measured cost on CPU, where a synchronisation is free and only the reductions count: see
``benchmarks/value_checks.py`` (its docstring has the numbers and the command).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV_VAR = "BIXT_VALUE_CHECKS"
_forced: bool | None = None


def value_checks_enabled() -> bool:
    """Whether value checks run: as set in Python, else ``$BIXT_VALUE_CHECKS`` ("1" on, "0" off), else on."""
    if _forced is not None:
        return _forced
    setting = os.environ.get(ENV_VAR, "1")
    if setting not in ("0", "1"):
        raise ValueError(f"{ENV_VAR} must be 0 (value checks off) or 1 (on), got {setting!r}")
    return setting == "1"


def set_value_checks(enabled: bool | None) -> None:
    """Turn the value checks on or off for every model (``None`` returns to ``$BIXT_VALUE_CHECKS`` / on)."""
    global _forced
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_value_checks takes True, False or None, got {enabled!r}")
    _forced = enabled


@contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Value checks on or off inside the ``with`` block, then as before."""
    global _forced
    previous = _forced
    set_value_checks(enabled)
    try:
        yield
    finally:
        _forced = previous


def can_check_values(tensor: torch.Tensor) -> bool:
    """Whether to check `tensor`'s values now: checks on, and it has values (not meta, as in cost counting, and not
    a graph being exported)."""
    return value_checks_enabled() and not tensor.is_meta and not torch.compiler.is_exporting()
