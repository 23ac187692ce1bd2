"""Registers bixt's image classifiers in timm the moment timm is imported, without importing timm (or torch) itself.

``import bixt`` installs the hook: if timm is already imported, the models are registered at once; otherwise an
import finder waits for ``import timm``, lets timm's own import run, registers, and removes itself. So ``import bixt``
stays cheap (no torch, see `bixt._lazy`), and ``import bixt, timm; timm.create_model("bixt_ti_l64_p16")`` works in
either order. The registration itself is `bixt.timm_interop.register_in_timm`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

log = logging.getLogger(__name__)


def _register_quietly() -> None:
    try:
        from bixt.timm_interop import register_in_timm

        register_in_timm()
    except Exception as err:  # a broken timm install must not break bixt
        log.warning("timm imported, but bixt could not register its models there (%s)", err)


class _RegisterAfterTimmImport(importlib.abc.MetaPathFinder):
    """Import hook: lets timm's own import run, then registers bixt's models (once, then it removes itself)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            execute(module)
            _register_quietly()

        spec.loader.exec_module = exec_then_register
        return spec


def register_when_timm_imports() -> None:
    """Called by ``import bixt``: register now if timm is already imported, else as soon as it is."""
    if "timm" in sys.modules:
        _register_quietly()
    elif importlib.util.find_spec("timm") is not None and not any(
        isinstance(finder, _RegisterAfterTimmImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _RegisterAfterTimmImport())
