"""Whether bf16 runs on matrix units or is emulated on this CPU: one matmul and one training step of the `points`
study's grouped model (configs/mnist-points.yaml, batch 64), each in fp32 and under bf16 autocast, alternating so
that load changes hit both alike.

    python benchmarks/bf16_emulation.py --threads 1 --rounds 3 > benchmarks/bf16_emulation_zen3.txt

Printed: the CPU's bf16 units as `bixt.precision` reads them, then per case the median over rounds and the
bf16 / fp32 time ratio (above 1: bf16 slower).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import bixt
from bixt.bench.suite import machine_description
from bixt.precision import autocast_for, cpu_bf16_units

# The recipe's model (configs/mnist-points.yaml), which `precision: auto` would run in bf16 on a CPU with bf16 units.
POINTS_MODEL = dict(
    num_classes=10, num_points=256, coord_dims=2, in_features=1, embed_dim=128, depth=4, num_heads=4, num_latents=32,
    num_groups=64, group_size=16,
)  # fmt: skip


def _seconds(case: Callable[[str], None], precision: str) -> float:
    start = time.perf_counter()
    case(precision)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# {machine_description()}; bf16 units: {cpu_bf16_units()}; {args.threads} thread(s), {args.rounds} rounds")

    a, b = torch.randn(65536, 256), torch.randn(256, 128)
    model = bixt.create_model("bixt_points_cls", **POINTS_MODEL)
    points, labels = torch.rand(64, 256, 3) * 2 - 1, torch.randint(0, 10, (64,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def matmul(precision: str) -> None:
        x, y = (a, b) if precision == "fp32" else (a.bfloat16(), b.bfloat16())
        torch.mm(x, y)

    def train_step(precision: str) -> None:
        with autocast_for(precision, "cpu"):
            loss = F.cross_entropy(model(points), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for name, case, flop in (("matmul (65536 x 256) @ (256 x 128)", matmul, 2 * 65536 * 256 * 128),
                             ("points training step, batch 64", train_step, None)):  # fmt: skip
        for precision in ("fp32", "bf16"):
            case(precision)  # warm-up: one-time allocation and kernel selection
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(args.rounds):
            for precision in times:
                times[precision].append(_seconds(case, precision))
        medians = {p: statistics.median(t) for p, t in times.items()}
        rates = {p: f", {flop / m / 1e9:.1f} GFLOP/s" if flop else "" for p, m in medians.items()}
        print(f"{name}:")
        for precision, median in medians.items():
            print(f"  {precision}  {median * 1e3:9.1f} ms{rates[precision]}")
        print(f"  bf16 / fp32 time: {medians['bf16'] / medians['fp32']:.1f}x")


if __name__ == "__main__":
    main()
