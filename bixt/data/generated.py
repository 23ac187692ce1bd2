"""Cache for generated data sets: arrays built once from their parameters (seed included), then reloaded.

The file name carries a hash of the parameters, so a change of any parameter (or of a generator's ``version``)
builds a new file instead of reusing a stale one. Files are written to a temporary name and renamed. A file that
cannot be read back whole (the zip's CRC checks every member) or that holds other parameters is rebuilt, with a
warning naming it: generation is deterministic, so the rebuilt file is the one that was lost.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
import zlib
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
    recorded = json.dumps(params, sort_keys=True)
    if path.is_file():
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
            if str(arrays.pop("params")) != recorded:
                raise ValueError("it holds a set generated with other parameters")
            return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            warnings.warn(f"{path} is damaged ({error}); generating it again", stacklevel=2)
    arrays = build()
    # A file object, not a name: numpy would append a second .npz suffix to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, params=np.array(recorded), **arrays)
    return arrays
