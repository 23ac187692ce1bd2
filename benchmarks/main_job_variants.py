"""Training-step time of the main job's model (configs/fashion-mnist.yaml) and of the larger variants tried for
issue 14's accuracy target, interleaved in one process so that load changes on a shared machine hit all alike.

    OMP_NUM_THREADS=1 python benchmarks/main_job_variants.py --rounds 3 --steps 3 > benchmarks/main_job_variants.txt
    OMP_NUM_THREADS=2 python benchmarks/main_job_variants.py --steps 5 [--precision bf16] > benchmarks/OUT.txt

Each variant changes one field of the recipe's model; a step is forward, cross-entropy, backward, gradient clipping
and AdamW at batch 256 on 32x32 inputs, as in the recipe (whose AdamW is torch's fused kernel; here the default
one, as in the first measurement), in fp32 or under bf16 autocast (`--precision bf16`). Printed: the median seconds
per step and its ratio to the recipe's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import bixt
from bixt.bench.suite import machine_description

RECIPE = dict(
    img_size=32, in_chans=1, num_classes=10, tokenizer="conv8", embed_dim=64, depth=4, num_heads=2, num_latents=8
)
VARIANTS = {
    "recipe (16 tokens, width 64, depth 4)": {},
    "conv stem /4 (64 tokens)": {"tokenizer": "conv4"},
    "width 96, 3 heads": {"embed_dim": 96, "num_heads": 3},
    "depth 6": {"depth": 6},
    "4 heads of width 16": {"num_heads": 4},
    "8 heads of width 8": {"num_heads": 8},
    "16 heads of width 4": {"num_heads": 16},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round (after one untimed)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 = bf16 autocast")
    args = parser.parse_args()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    torch.manual_seed(0)
    images, labels = torch.randn(args.batch, 1, 32, 32), torch.randint(0, 10, (args.batch,))
    setups = {}
    for name, change in VARIANTS.items():
        model = bixt.create_model("bixt_ti_cnv_l64_d13_p8", **{**RECIPE, **change})
        setups[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))

    def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for model, optimizer in setups.values():
        step(model, optimizer)  # untimed: allocations, one-time kernel selection
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, (model, optimizer) in setups.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model, optimizer)
            times[name].append((time.perf_counter() - start) / args.steps)
    print(f"{machine_description()}, {torch.get_num_threads()} thread(s), batch {args.batch}, {args.precision}")
    base = statistics.median(next(iter(times.values())))
    print(f"{'variant':40s} {'params':>10s} {'s/step (median)':>16s} {'x recipe':>9s}   rounds")
    for name, rounds in times.items():
        params = sum(p.numel() for p in setups[name][0].parameters())
        median = statistics.median(rounds)
        shown = " / ".join(f"{t:.3f}" for t in rounds)
        print(f"{name:40s} {params:>10,d} {median:>16.3f} {median / base:>8.2f}x   {shown}")


if __name__ == "__main__":
    main()
