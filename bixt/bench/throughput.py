"""One throughput measurement: a registered model at a given number of tokens, training step or inference.

A measurement runs in a process of its own (``python -m bixt.bench.throughput CASE_JSON``) so that the process's peak
resident memory belongs to that measurement alone; `bixt.bench.suite` starts those processes and collects their
JSON lines. On CUDA the allocator's peak is reported as well.

Conventions:
- ``flops``: multiply-adds of one forward pass of one sample (the paper's "FLOPs", SPEC 4), counted on the meta device.
- ``step_flop``: floating-point operations of one timed step, 2 per multiply-add, x3 for a training step (forward,
  and a backward pass of twice the forward's matmul work).
- ``peak_fraction``: achieved FLOP/s over the fp32 matmul peak measured on the same machine (`matmul_peak_gflop_s`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from bixt.bench.cost import count_flops
from bixt.layers.attention_paths import ATTENTION_PATHS, attention_path, auto_choices, clear_auto_choices
from bixt.models.registry import create_model, get_entry, replace_config
from bixt.precision import autocast_for, matmul_width, resolve_precision

Mode = Literal["train", "infer"]
Precision = Literal["auto", "fp32", "bf16"]
MODES: tuple[str, ...] = ("train", "infer")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class BenchCase:
    """What one measurement runs. tokens: sequence length, or patches per image (a square grid) for image models.
    options: model config fields to override (e.g. a study recipe's width), as in ``bixt train``'s model.options;
    the token count is set by `tokens`, not here."""

    model: str
    tokens: int
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch: int = 8
    mode: Mode = "train"
    precision: Precision = "auto"  # auto: bixt.precision's rule for the device; the record says what ran
    attn: str = "auto"
    compile: bool = False
    grad_checkpointing: bool = False
    channels_last: bool = False
    warmup: int = 1
    repeats: int = 3
    device: str = "cpu"

    def __post_init__(self) -> None:
        config = get_entry(self.model).config  # raises for unknown names
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a dict of config fields, got {type(self.options).__name__}")
        try:
            replace_config(config, self.options)
        except TypeError as error:
            raise ValueError(f"{self.model}: {error}") from None
        sized_by_tokens = sorted(set(self.options) & set(_input_overrides(self.model, self.tokens)))
        if sized_by_tokens:
            raise ValueError(f"options {sized_by_tokens} are set by tokens={self.tokens}; leave them out of options")
        for name in ("tokens", "batch", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.attn not in ATTENTION_PATHS:
            raise ValueError(f"attn must be one of {ATTENTION_PATHS}, got {self.attn!r}")


def _input_overrides(model: str, tokens: int) -> dict[str, Any]:
    """Config overrides that make `model` take `tokens` tokens: image size for image models, length for sequences,
    points per cloud for point models."""
    config = get_entry(model).config
    if hasattr(config, "max_length"):
        return {"max_length": tokens}
    if hasattr(config, "num_points"):
        return {"num_points": tokens}
    if hasattr(config, "img_size"):
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"image models take a square number of tokens (e.g. 196, 1024, 3136), got {tokens}")
        stride = getattr(config, "stride", 16)  # ViT-style configs have a fixed 16 x 16 patch
        return {"img_size": side * stride}
    raise ValueError(f"{model}: cannot set its number of tokens (no img_size, max_length or num_points in its config)")


def build(case: BenchCase, device: torch.device | str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model of `case` and one batch of random inputs for it, on `device`."""
    model = create_model(case.model, **case.options, **_input_overrides(case.model, case.tokens)).to(device)
    example = model.example_input(1)
    examples = example if isinstance(example, tuple | list) else (example,)
    inputs = []
    for x in examples:
        if x.dtype == torch.long:  # token ids: the vocabulary is the embedding's size
            vocab = model.config.vocab_size
            inputs.append(torch.randint(0, vocab, (case.batch, case.tokens), device=device))
        else:
            inputs.append(torch.randn(case.batch, *x.shape[1:], device=device))
    return model, tuple(inputs)


def forward_flops(case: BenchCase) -> int:
    """Multiply-adds of one forward pass of one sample, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model, inputs = build(dataclasses.replace(case, batch=1), "meta")
    return count_flops(model, *inputs)


def matmul_peak_gflop_s(size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Median fp32 GFLOP/s of a square matmul: the machine's practical peak for the work that dominates a model."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        if i:  # the first call warms up the kernel
            times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(case: BenchCase) -> dict[str, Any]:
    """Time `case` (warm-up, then `repeats` timed steps) in this process; returns one JSON-ready record."""
    torch.manual_seed(0)
    device = torch.device(case.device)
    model, inputs = build(case, device)
    model.train(case.mode == "train")
    if case.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"{case.model} has no set_grad_checkpointing")
        model.set_grad_checkpointing(True)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in inputs)
    runner = torch.compile(model) if case.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if case.mode == "train" else None
    with torch.no_grad():
        num_classes = runner(*(x[:1] for x in inputs)).shape[-1]
    targets = torch.randint(0, num_classes, (case.batch,), device=device)
    precision = resolve_precision(case.precision, device, width=matmul_width(model))
    rss_before_mb = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    train = case.mode == "train"
    clear_auto_choices()

    def step() -> None:
        with attention_path(case.attn), autocast_for(precision.precision, device), torch.set_grad_enabled(train):
            logits = runner(*inputs)
            if optimizer is None:
                return
            loss = F.cross_entropy(logits.float(), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = []
    for i in range(case.warmup + case.repeats):
        _sync(case.device)
        start = time.perf_counter()
        step()
        _sync(case.device)
        if i >= case.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    flops = forward_flops(case)
    step_flop = 2 * flops * case.batch * (3 if case.mode == "train" else 1)
    record = dataclasses.asdict(case) | {
        "step_s": step_s,
        "step_s_all": times,
        "samples_per_s": case.batch / step_s,
        "tokens_per_s": case.batch * case.tokens / step_s,
        "peak_mem_mb": _peak_rss_mb(),
        "mem_before_steps_mb": rss_before_mb,
        "flops": flops,
        "step_flop": step_flop,
        "achieved_gflop_s": step_flop / step_s / 1e9,
        "precision_used": precision.precision,
        "precision_reason": precision.reason,
        "attn_chosen": auto_choices(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        record["cuda_peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def main(argv: list[str]) -> int:
    """Subprocess entry: argv[0] is a BenchCase as JSON; prints one JSON line with the record."""
    case = BenchCase(**json.loads(argv[0]))
    print(json.dumps(measure(case)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
