"""Writing files so that an interruption never leaves a half-written one behind: temporary name, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``, on any error delete it.

    Works for files and directories alike (whatever the body creates at the yielded path).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()  # the body creates it as a file or a directory
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            # os.replace cannot overwrite a non-empty directory: move the old one aside first, then drop it.
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary path beside `path`, then rename the result onto `path`."""
    with atomic_path(Path(path)) as tmp:
        write(tmp)
