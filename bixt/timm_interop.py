"""Optional: make every bixt model creatable through timm (``timm.create_model("bixt_ti_l64_p16")``).

timm is not a dependency (it imports torchvision, whose PyPI wheels do not load next to a CPU-only torch). When timm
imports, loading bixt's models (the first ``bixt.create_model`` or ``bixt.list_models``, or ``import bixt`` in a
program that imported timm already) registers the names; otherwise nothing happens.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from bixt.models.registry import create_model, list_models

log = logging.getLogger(__name__)

# keyword arguments timm passes to every entrypoint that bixt's configs do not have
_TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"bixt downloads no weights; build {name!r} and load a local official checkpoint with "
                "bixt.load_official(model, path)"
            )
        for key in _TIMM_ONLY_KWARGS:
            kwargs.pop(key, None)
        return create_model(name, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    return build


def register_in_timm() -> list[str]:
    """Register every bixt name that timm does not know yet in timm's registry; returns the names registered."""
    from timm.models import is_model, register_model

    added = []
    for name in list_models():
        if not is_model(name):
            register_model(_entrypoint(name))
            added.append(name)
    return added


def register_if_timm_available() -> None:
    """Called when bixt.models is first imported: register in timm when timm imports cleanly, stay silent otherwise."""
    if importlib.util.find_spec("timm") is None:
        return
    try:
        register_in_timm()
    except Exception as err:  # a broken timm/torchvision install must not break bixt
        log.debug("timm is installed but could not be used (%s); bixt models are not registered there", err)
