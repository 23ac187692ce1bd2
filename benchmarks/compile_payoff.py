"""Does torch.compile of the training step pay for itself? Eager steps, then compiled steps, compile time included.

A step is forward, cross-entropy, backward and an AdamW step of the model as `bixt train` runs it (``compile: true``
compiles the model; the loss and the optimizer stay eager). The first compiled step includes compiling the forward
and the backward graph; the break-even is the number of steps after which the compiled run is ahead:
compile overhead / (eager step - compiled step). Examples:

    python benchmarks/compile_payoff.py bixt_ti_cnv_l64_d13_p8 --img 32 --batch 256 --steps 10 \\
        --options '{"in_chans": 1, "num_classes": 10, "embed_dim": 64, "depth": 4, "num_heads": 2, "num_latents": 8}'
    python benchmarks/compile_payoff.py bixt_ti_l64_p16s4 --img 224 --batch 8 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import bixt
from bixt.bench.suite import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--img", type=int, required=True, help="image side in pixels")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind after the first")
    parser.add_argument("--options", type=json.loads, default={}, help="model config overrides as JSON")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = bixt.create_model(args.model, img_size=args.img, **args.options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, model.config.in_chans, args.img, args.img)
    labels = torch.randint(0, model.config.num_classes, (args.batch,))

    def timed_steps(runner, count: int) -> list[float]:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            F.cross_entropy(runner(images), labels).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        return times

    eager = timed_steps(model, args.steps + 1)
    compiled = timed_steps(torch.compile(model), args.steps + 1)
    eager_s, compiled_s = statistics.median(eager[1:]), statistics.median(compiled[1:])
    overhead = compiled[0] - eager_s  # the first compiled step beyond one ordinary step
    gain = eager_s - compiled_s
    print(f"{args.model} {args.options} img={args.img} batch={args.batch} threads={torch.get_num_threads()}")
    print(f"# {machine_description()}; torch {torch.__version__}")
    print(f"eager:    first step {eager[0]:.2f} s, then median {eager_s:.3f} s/step  {[round(t, 3) for t in eager]}")
    print(
        f"compiled: first step {compiled[0]:.2f} s, then median {compiled_s:.3f} s/step  "
        f"{[round(t, 3) for t in compiled]}"
    )
    print(
        f"compiled / eager step time {compiled_s / eager_s:.2f}x; compile overhead {overhead:.1f} s; "
        + (f"pays for itself after {overhead / gain:.0f} steps" if gain > 0 else "never pays for itself")
    )


if __name__ == "__main__":
    main()
