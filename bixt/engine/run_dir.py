"""Run directories that never collide: created exclusively, and held by one process at a time.

A new run's directory is made with an exclusive ``mkdir``: two runs started in the same second under the same name
get ``NAME`` and ``NAME-2``. A name the user chose (``--run_name``) that is already taken is refused rather than
suffixed, since the user asked for that directory. While a run trains it holds an advisory lock on
``<run>/.lock``, so a second process resuming the same run is refused instead of writing into it as well; the
operating system releases the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from bixt.engine.config import ConfigError

RUN_CONFIG_NAME = "config.yaml"  # the run's fully resolved config, which `bixt eval` and `--resume` read back
LOCK_NAME = ".lock"
MAX_SUFFIX = 1000  # NAME-2 ... NAME-999: far more runs of one recipe per second than anyone starts


def check_output_dir(output_dir: str | os.PathLike) -> None:
    """Fail now, not after the data is loaded, if run directories cannot be made under ``output_dir``."""
    path = Path(output_dir)
    existing = path
    while not existing.exists():  # the nearest ancestor that exists decides whether we may create the rest
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"output_dir {path} cannot be made: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir {path} is not writable (no write permission on {existing})")


def check_run_name_free(run_dir: Path) -> None:
    """A chosen run name must not already be a run: a new run never replaces another's files."""
    if run_dir.exists():
        raise ConfigError(
            f"run directory {run_dir} already exists; choose another --run_name, or continue that run with "
            f"`bixt train --resume {run_dir}`"
        )


def create_run_dir(parent: Path, name: str, *, exact: bool) -> Path:
    """Make ``parent/name`` exclusively and return it. ``exact``: the name was chosen, so a taken name is an error;
    otherwise a taken name gets the first free suffix ``-2``, ``-3``, ..."""
    parent.mkdir(parents=True, exist_ok=True)
    candidates = [name] if exact else [name, *(f"{name}-{i}" for i in range(2, MAX_SUFFIX))]
    for candidate in candidates:
        try:
            (parent / candidate).mkdir()
        except FileExistsError:
            continue
        return parent / candidate
    if exact:
        check_run_name_free(parent / name)  # raises: another process made it after the early check
    raise ConfigError(f"no free run directory {parent / name}-N for N < {MAX_SUFFIX}")


class RunLock:
    """An exclusive lock on a run directory for as long as this process trains in it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the lock's lifetime, closed in release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(f"run directory {self.path.parent} is in use by {holder}; wait for it to end") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock; the file stays, empty locks cost nothing
            self._file = None
