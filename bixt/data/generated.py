"""Cache for generated data sets: arrays built once from their parameters (seed included), then reloaded.

The file name carries a hash of the parameters, so a change of any parameter (or of a generator's ``version``)
builds a new file instead of reusing a stale one. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bixt.fileio import atomic_path


def params_key(params: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def cached_arrays(
    cache_dir: Path, name: str, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns for ``params``, from ``<cache_dir>/generated/<name>-<key>.npz`` if there."""
    path = Path(cache_dir) / "generated" / f"{name}-{params_key(params)}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files if k != "params"}
    arrays = build()
    # A file object, not a name: numpy would append a second .npz suffix to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, params=np.array(json.dumps(params, sort_keys=True)), **arrays)
    return arrays
