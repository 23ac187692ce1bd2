"""Where data lives on disk, and the small helpers that keep it honest: atomic writes, sha256, manifests.

Layout of the cache directory (``BIXT_DATA_DIR``, else ``$XDG_CACHE_HOME/bixt``, else ``~/.cache/bixt``)::

    <cache>/<name>/manifest.json     what was fetched: source, sha256 and size of every file read or written
    <cache>/<name>/<files>           the data files themselves
    <cache>/generated/<name>-<key>.npz   generated sets, keyed by a hash of their parameters
    <cache>/stats/<name>.json        normalisation statistics computed from the training split

Every write goes to a temporary name in the same directory and is renamed into place, so an interrupted process
leaves either the old state or the new one, never half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bixt.fileio import atomic_path, sha256_file

ENV_VAR = "BIXT_DATA_DIR"
MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """The cache root: ``$BIXT_DATA_DIR``, else ``$XDG_CACHE_HOME/bixt``, else ``~/.cache/bixt``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bixt"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a fetched data set, or None if there is none (or it is unreadable)."""
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def verify_files(directory: Path, files: dict[str, str]) -> list[str]:
    """Problems found checking ``files`` (relative name -> expected sha256) in ``directory``; empty if all match."""
    problems = []
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{path}: sha256 {actual} does not match the expected {expected}")
    return problems


def directory_size(directory: Path) -> int:
    """Total bytes of the regular files under ``directory`` (0 if it does not exist)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
