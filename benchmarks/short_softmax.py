"""The explicit attention path with and without its short-softmax rule (bixt.layers.attention_math
SHORT_SOFTMAX_AXIS): forward + backward of the attention alone, and whole training steps of the main job's model,
the two settings interleaved round by round in one process; first the softmax alone.

    OMP_NUM_THREADS=1 python benchmarks/short_softmax.py > benchmarks/short_softmax_<cpu>.txt

"plain" sets SHORT_SOFTMAX_AXIS = 0, which turns the rule off (softmax in the input's dtype over the last axis, as
before the rule); "rule" sets the length the package uses on AVX-512 CPUs (SHORT_SOFTMAX_AXIS_AVX512), whatever this
CPU's own choice is, so that the rule can be measured where it is off. Attention shapes: the main job per process
(batch 128, 8 heads of width 8, 8 latents, 16 tokens; 16 heads of width 4) and, to show the rule leaves them alone,
BiXT-Ti's (batch 8, 6 heads of width 32, 64 latents, 196 tokens). Printed: median microseconds (attention) or
milliseconds (steps) per call over the rounds, and plain / rule.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

import bixt
from bixt.bench.suite import machine_description
from bixt.layers import attention_math

RULE = attention_math.SHORT_SOFTMAX_AXIS_AVX512
CHOSEN = attention_math.SHORT_SOFTMAX_AXIS  # this CPU's own, restored after each measurement
# (b, h, m latents, n tokens, d channels per head)
ATTENTION_SHAPES = {
    "main job, 8 heads": (128, 8, 8, 16, 8),
    "main job, 16 heads": (128, 16, 8, 16, 4),
    "BiXT-Ti, 196 tokens": (8, 6, 64, 196, 32),
}
RECIPE = yaml.safe_load((Path(__file__).parents[1] / "configs" / "fashion-mnist.yaml").read_text())["model"]


def softmax_call(shape: tuple[int, ...], dtype: torch.dtype, dim: int) -> Callable[[], None]:
    """Forward + backward of the explicit path's softmax of a (b, h, m, n) similarity over `dim`."""
    sim = torch.randn(shape, dtype=dtype, requires_grad=True)
    weights = torch.randn(shape, dtype=dtype)

    def call() -> None:
        attention_math._softmax(sim, dim).backward(weights)

    return call


def attention_call(shape: tuple[int, ...], dtype: torch.dtype) -> Callable[[], None]:
    """Forward + backward of one bi-directional cross-attention and one latent self-attention at `shape`."""
    b, h, m, n, d = shape
    lat, tok = (torch.randn(b, h, size, d, dtype=dtype, requires_grad=True) for size in (m, n))

    def call() -> None:
        lat_out, tok_out, _, _ = attention_math.bidirectional_attention(lat, lat, tok, tok)
        self_out, _ = attention_math.softmax_attention(lat_out, lat_out, lat_out)
        (self_out.float().sum() + tok_out.float().sum()).backward()

    return call


def training_step(heads: int, dtype: torch.dtype) -> Callable[[], None]:
    """One training step of the main job's model at one process's batch (128), autocast to `dtype`."""
    torch.manual_seed(0)
    model = bixt.create_model(RECIPE["name"], **{**RECIPE["options"], "num_heads": heads})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    images, labels = torch.randn(128, 1, 32, 32), torch.randint(0, 10, (128,))

    def call() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return call


def interleaved(call: Callable[[], None], rounds: int, calls: int) -> tuple[float, float]:
    """Median seconds per call with the rule off and on, alternating round by round after one untimed call each."""
    times: dict[int, list[float]] = {0: [], RULE: []}
    for axis in times:
        attention_math.SHORT_SOFTMAX_AXIS = axis
        call()
    for _ in range(rounds):
        for axis, out in times.items():
            attention_math.SHORT_SOFTMAX_AXIS = axis
            start = time.perf_counter()
            for _ in range(calls):
                call()
            out.append((time.perf_counter() - start) / calls)
    attention_math.SHORT_SOFTMAX_AXIS = CHOSEN
    return statistics.median(times[0]), statistics.median(times[RULE])


def print_row(label: str, dtype: str, plain: float, rule: float, *, unit: str) -> None:
    """One line of the table: seconds shown in `unit` (us: no decimals, ms: one), and plain / rule."""
    scale, digits = (1e6, 0) if unit == "us" else (1e3, 1)
    print(
        f"{label:44s} {dtype:>9s} {plain * scale:8.{digits}f}{unit} {rule * scale:8.{digits}f}{unit}  "
        f"{plain / rule:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="timed attention calls per setting and round")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per setting and round")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"# {machine_description()}, {torch.get_num_threads()} thread(s); rule: SHORT_SOFTMAX_AXIS = {RULE} "
        f"(this CPU's own: {CHOSEN})"
    )
    print(f"{'case':44s} {'dtype':>9s} {'plain':>10s} {'rule':>10s}  plain / rule")
    for dtype in (torch.bfloat16, torch.float32):
        name = str(dtype).removeprefix("torch.")
        for dim in (-1, -2):
            times = interleaved(softmax_call((128, 8, 8, 16), dtype, dim), args.rounds, args.calls)
            print_row(f"softmax over axis {dim} of (128, 8, 8, 16)", name, *times, unit="us")
        for label, shape in ATTENTION_SHAPES.items():
            times = interleaved(attention_call(shape, dtype), args.rounds, args.calls)
            print_row(f"attention, {label}", name, *times, unit="us")
        for heads in (8, 16):
            times = interleaved(training_step(heads, dtype), args.rounds, args.steps)
            print_row(f"main job training step, {heads} heads", name, *times, unit="ms")


if __name__ == "__main__":
    main()
