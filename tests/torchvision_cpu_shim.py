"""Test environment only: let PyPI's torchvision (a CUDA build) import next to a CPU-only torch, so timm imports.

Its compiled operators do not load there, and importing it fails on the missing ``torchvision::nms`` schema. Declaring
the two schemas it looks up before it is imported is enough for timm, which needs only its Python transforms. bixt
itself never imports torchvision. Import this module before timm.
"""

from __future__ import annotations

import torch


def _declare_torchvision_schemas() -> torch.library.Library | None:
    try:
        torch.ops.torchvision.nms  # noqa: B018  (a working torchvision build declares it already)
        return None
    except (AttributeError, RuntimeError):
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        return library


# kept referenced: the schemas live as long as the Library object
_LIBRARY = _declare_torchvision_schemas()
