"""torch's fused AdamW against its per-parameter loop on the main job's model (configs/fashion-mnist.yaml, batch 256,
fp32): the optimizer step alone and the whole training step, the two optimizers alternating step by step so that load
changes hit both alike.

    python benchmarks/fused_adamw.py --threads 2 --steps 15 > benchmarks/fused_adamw_main_job_zen3.txt

Printed: per optimizer the median over steps of the optimizer step and of the training step, then fused / loop.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from main_job_variants import RECIPE as MAIN_JOB_MODEL  # the main job's model, beside this script

import bixt
from bixt.bench.suite import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per optimizer, after 3 untimed ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# {machine_description()}; {args.threads} thread(s), {args.steps} steps per optimizer, batch 256, fp32")

    model = bixt.create_model("bixt_ti_cnv_l64_d13_p8", **MAIN_JOB_MODEL)
    models = {"loop": model, "fused": copy.deepcopy(model)}
    optimizers = {
        "loop": torch.optim.AdamW(models["loop"].parameters(), lr=1e-3, foreach=False),
        "fused": torch.optim.AdamW(models["fused"].parameters(), lr=1e-3, fused=True),
    }
    images, labels = torch.randn(256, 1, 32, 32), torch.randint(0, 10, (256,))

    def train_step(name: str) -> tuple[float, float]:
        start = time.perf_counter()
        loss = F.cross_entropy(models[name](images), labels)
        loss.backward()
        before_step = time.perf_counter()
        optimizers[name].step()
        end = time.perf_counter()
        optimizers[name].zero_grad(set_to_none=True)
        return end - before_step, end - start

    for _ in range(3):  # untimed: allocation, kernel selection, the optimizer state
        for name in models:
            train_step(name)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(args.steps):
        for name in models:
            times[name].append(train_step(name))
    medians = {
        name: (statistics.median(t[0] for t in steps), statistics.median(t[1] for t in steps))
        for name, steps in times.items()
    }
    for name, (optimizer_step, training_step) in medians.items():
        print(f"{name:5s}  optimizer step {optimizer_step * 1e3:6.2f} ms   training step {training_step * 1e3:7.1f} ms")
    ratio_optimizer = medians["fused"][0] / medians["loop"][0]
    ratio_step = medians["fused"][1] / medians["loop"][1]
    print(f"fused / loop: optimizer step {ratio_optimizer:.2f}x, training step {ratio_step:.3f}x")


if __name__ == "__main__":
    main()
