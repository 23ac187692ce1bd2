"""Files that are never half-written (temporary name, then rename) and that say when they are damaged (sha256)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def temporary_path(target: Path) -> Iterator[Path]:
    """Yield an unused path ``.NAME.*.tmp`` beside ``target``, for the body to create as a file, a directory or a
    link; whatever is left at that path when the body ends, normally or not, is deleted."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()  # the body creates it as a file, a directory or a link
    try:
        yield tmp
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.is_symlink() or tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``, on any error delete it.

    Works for files, directories and links alike (whatever the body creates at the yielded path).
    """
    with temporary_path(target) as tmp:
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


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary path beside `path`, then rename the result onto `path`."""
    with atomic_path(Path(path)) as tmp:
        write(tmp)


def atomic_symlink(link: Path, points_to: str) -> None:
    """Make ``link`` a symbolic link to ``points_to``, replacing what was there in one rename (never missing)."""
    with atomic_path(Path(link)) as tmp:
        os.symlink(points_to, tmp)


class DamagedFileError(ValueError):
    """A file exists but its content is not what was written or recorded; the message names it and the repair."""


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files do not need to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | list[str], repair: str) -> None:
    """DamagedFileError naming ``path`` and ``repair`` (what to do) unless its sha256 is ``expected`` (or one of)."""
    accepted = [expected] if isinstance(expected, str) else expected
    actual = sha256_file(path)
    if actual not in accepted:
        raise DamagedFileError(
            f"{path} is damaged: its sha256 {actual[:16]}... is not the {accepted[-1][:16]}... recorded when it was "
            f"written; {repair}"
        )
