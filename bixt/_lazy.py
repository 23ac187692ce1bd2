"""bixt's one deferred-import mechanism: nothing heavy is imported until it is used.

Two halves of one idea, both so that ``import bixt`` imports neither torch (about 1.5 s; it keeps ``bixt --help`` and
the subcommands' help fast) nor timm or torchvision:

- `lazy_exports`: a package's public names (PEP 562) are imported from their modules on first use, so that
  ``bixt.create_model`` imports what it needs then. Submodules resolve the same way (``bixt.layers.attention_paths``
  works after a bare ``import bixt``).
- `after_import`: run a callback as soon as some other package is imported, without importing it. ``import bixt``
  uses it to register its image classifiers in timm the moment timm is imported (or at once, when timm already is),
  so ``import bixt, timm; timm.create_model("bixt_ti_l64_p16")`` works in either order.

The subcommands of ``bixt`` (bixt/commands/) import their dependencies inside ``main`` for the same start-up reason.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; ``exports`` maps each public name to the module defining it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__


class _CallAfterImport(importlib.abc.MetaPathFinder):
    """Import hook: lets ``module``'s own import run, then calls ``callback`` (once; then it removes itself)."""

    def __init__(self, module: str, callback: Callable[[], None]) -> None:
        self.module, self.callback = module, callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_then_call(module: ModuleType) -> None:
            execute(module)
            self.callback()

        spec.loader.exec_module = exec_then_call
        return spec


def after_import(module: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` now if top-level package ``module`` is imported, else right after its import (if installed);
    a second request for the same module while one waits is ignored."""
    if module in sys.modules:
        callback()
    elif importlib.util.find_spec(module) is not None and not any(
        isinstance(finder, _CallAfterImport) and finder.module == module for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _CallAfterImport(module, callback))
