"""Numeric precision of a run: ``fp32``, ``bf16`` / ``fp16`` autocast, or ``auto``, chosen for the machine.

``auto`` picks bf16 autocast where bf16 matmuls run on hardware that makes the step faster than fp32, fp32 elsewhere:

- CUDA: bf16 where the GPU supports it (``torch.cuda.is_bf16_supported()``, Ampere and later), else fp32.
- CPU with AMX (``amx_bf16``): bf16. Matrix tiles give the authors' code 2.2x at 3,136 tokens (issue 14's profile on
  an Intel Xeon of this project's machine kind).
- CPU with AVX512-BF16 but no AMX (e.g. AMD EPYC Zen 4): bf16 for models whose matmuls are at least
  ``AVX512_BF16_MIN_WIDTH`` wide (the median input width of their Linear layers, `matmul_width`). Measured on an AMD
  EPYC Zen 4, idle, the main job's architecture at widths 32-192 (BENCHMARKS.md §6.2): bf16 trains 1.25x faster
  than fp32 at width 64, 1.3x at 96, 1.5x at 128, 1.7x at 192, and no faster at width 32 (1.01-1.02x), where
  the casts autocast adds around small matmuls eat what the dot-product instructions save. Without a model to look
  at, fp32.
- any other CPU: fp32 (bf16 matmuls would be emulated, tens of times slower).

The CPU's bf16 units are read at run time from the kernel's CPU flags (``/proc/cpuinfo``); where that file is missing
(not Linux) ``auto`` keeps fp32. Tests replace :func:`cpu_bf16_units` to pretend any machine.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
CpuBf16Units = Literal["amx", "avx512_bf16", "none"]
CPUINFO = Path("/proc/cpuinfo")  # the kernel's CPU flags (Linux)

# On a CPU with AVX512-BF16 and no AMX, bf16 autocast pays from this matmul width on (measured: 32 no, 64 yes).
AVX512_BF16_MIN_WIDTH = 64
# Measured on an AMD EPYC Zen 3 (AVX2, no AVX-512), one thread, idle (benchmarks/bf16_emulation.py): a (65536 x 256)
# @ (256 x 128) matmul took 18x its fp32 time under bf16, a training step of the points study's grouped model 7.3x.
EMULATED_BF16_WARNING = (
    "WARNING: this CPU has no bf16 matrix units (neither AVX512-BF16 nor AMX), so bf16 matmuls are emulated: a "
    "training step took 7x its fp32 time on an AMD EPYC Zen 3; `precision: auto` would pick fp32 here"
)


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run uses (``fp32``, ``bf16`` or ``fp16``), what was asked for, and why, for the start-up report."""

    precision: str
    requested: str
    reason: str

    def describe(self) -> str:
        return f"precision {self.precision} (asked: {self.requested}; {self.reason})"


def _check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel lists them (``/proc/cpuinfo``); empty where that file is missing."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.cache
def cpu_bf16_units() -> CpuBf16Units:
    """The CPU's bf16 matrix units from its flags: ``amx`` (AMX-BF16 tiles), ``avx512_bf16`` or ``none``."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "none"


def matmul_width(model: nn.Module) -> int | None:
    """The median input width of `model`'s Linear layers; None if it has none."""
    widths = sorted(module.in_features for module in model.modules() if isinstance(module, nn.Linear))
    return widths[len(widths) // 2] if widths else None


def resolve_precision(requested: str, device: torch.device | str, *, width: int | None = None) -> PrecisionChoice:
    """``auto`` -> the precision for `device` and a model of matmul `width` (module docstring); anything else is
    checked and kept."""
    requested = _check(requested)
    device = torch.device(device)
    if requested == "bf16" and device.type == "cpu" and cpu_bf16_units() == "none":
        # kept, since the user asked for it, but never silently: a run can take an order of magnitude longer
        return PrecisionChoice(requested, requested, f"as configured; {EMULATED_BF16_WARNING}")
    if requested != "auto":
        return PrecisionChoice(requested, requested, "as configured")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", requested, "CUDA device with bf16 support")
        return PrecisionChoice("fp32", requested, "CUDA device without bf16 support")
    if device.type != "cpu":
        return PrecisionChoice("fp32", requested, f"no bf16 rule for {device.type} devices")
    units = cpu_bf16_units()
    if units == "amx":
        return PrecisionChoice("bf16", requested, "CPU with AMX bf16 units")
    if units == "avx512_bf16":
        if width is not None and width >= AVX512_BF16_MIN_WIDTH:
            return PrecisionChoice("bf16", requested, f"CPU with AVX512-BF16, matmuls {width} wide")
        return PrecisionChoice(
            "fp32",
            requested,
            f"CPU with AVX512-BF16 but no AMX: bf16 measured no faster than fp32 for matmuls under "
            f"{AVX512_BF16_MIN_WIDTH} wide (this model's: {width if width is not None else 'unknown'})",
        )
    return PrecisionChoice("fp32", requested, "CPU without bf16 matrix units")


def autocast_for(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved or ``auto`` precision on `device`; a no-op for fp32."""
    device = torch.device(device)
    precision = resolve_precision(precision, device).precision
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
