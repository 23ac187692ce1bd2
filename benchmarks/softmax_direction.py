"""The explicit path's softmax over the latents: softmax(-1) of the transposed (b, h, n, m) view against softmax(-2)
of the (b, h, m, n) similarity then transposed (the same numbers), forward and backward, interleaved.

    OMP_NUM_THREADS=2 python benchmarks/softmax_direction.py > benchmarks/softmax_direction_<cpu>.txt

Shapes: the main job (batch 256, 8 latents, 16 tokens) at 2 and 16 heads, and BiXT-Ti/4 (batch 8, 6 heads, 64
latents, 3,136 tokens). Printed: median milliseconds of forward + backward per call over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bixt.bench.suite import machine_description

SHAPES = {
    "main job, 2 heads": (256, 2, 8, 16),
    "main job, 16 heads": (256, 16, 8, 16),
    "BiXT-Ti/4, 3,136 tokens": (8, 6, 64, 3136),
}


def transposed_then_softmax(sim: torch.Tensor) -> torch.Tensor:
    return sim.transpose(-2, -1).softmax(dim=-1)


def softmax_then_transposed(sim: torch.Tensor) -> torch.Tensor:
    return sim.softmax(dim=-2).transpose(-2, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="timed calls per variant and round")
    args = parser.parse_args()
    torch.manual_seed(0)
    variants = {
        "softmax(-1) of the transposed view": transposed_then_softmax,
        "softmax(-2), then transposed": softmax_then_transposed,
    }
    print(f"{machine_description()}, {torch.get_num_threads()} thread(s), fp32, forward + backward, ms per call")
    print(f"{'shape (b, h, m, n)':32s} " + " ".join(f"{name:>36s}" for name in variants) + "   ratio")
    for label, shape in SHAPES.items():
        sim = torch.randn(shape, requires_grad=True)
        grad = torch.randn(shape[0], shape[1], shape[3], shape[2])
        reference = transposed_then_softmax(sim)
        if not torch.allclose(reference, softmax_then_transposed(sim), atol=1e-6):
            raise SystemExit(f"{label}: the two variants disagree")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for fn in variants.values():
            fn(sim).backward(grad)  # untimed warm-up
        for _ in range(args.rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn(sim).backward(grad)
                times[name].append((time.perf_counter() - start) / args.calls * 1e3)
        medians = [statistics.median(t) for t in times.values()]
        print(
            f"{label + ' ' + str(shape):32s} "
            + " ".join(f"{m:>36.3f}" for m in medians)
            + f"   {medians[0] / medians[1]:.2f}x"
        )


if __name__ == "__main__":
    main()
