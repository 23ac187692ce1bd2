"""A process-wide choice among named options: the one set in Python, else an environment variable, else a default.

The attention path (``BIXT_ATTN``) and the MLP's memory mode (``BIXT_MLP_MEMORY``) are such choices: they hold for
every model in the process, a run records the one it trained with, and a benchmark can flip them from outside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class Switch:
    """``get()``: the value set in Python, else ``$env``, else `default`; ``set(None)`` returns to that."""

    def __init__(self, what: str, env: str, choices: tuple[str, ...], default: str) -> None:
        self.what, self.env, self.choices, self.default = what, env, choices, default
        self._forced: str | None = None

    def check(self, value: str) -> str:
        if value not in self.choices:
            raise ValueError(f"{self.what} must be one of {self.choices}, got {value!r}")
        return value

    def get(self) -> str:
        if self._forced is not None:
            return self._forced
        return self.check(os.environ.get(self.env, self.default))

    def set(self, value: str | None) -> None:
        self._forced = None if value is None else self.check(value)

    @contextmanager
    def using(self, value: str) -> Iterator[None]:
        """`value` inside the ``with`` block, then what was in force before."""
        previous = self._forced
        self.set(value)
        try:
            yield
        finally:
            self._forced = previous
