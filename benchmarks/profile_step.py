"""Where one training step spends its time: torch.profiler self CPU time per op class, then the top ops.

A training step is what ``../shared/peer/vs_official.py`` times (forward, cross-entropy, backward, AdamW step on
random images, 1,000 classes unless `--options` says otherwise); one warm-up step, then `--steps` profiled steps.
Self time excludes the time of child ops, so the classes add up to the step. Examples (BiXT-Ti/4 at 3,136 tokens,
batch 8; the main job's model, one process's batch):

    python benchmarks/profile_step.py bixt_ti_l64_p16s4 --precision bf16
    python benchmarks/profile_step.py bixt_ti_cnv_l64_d13_p8 --img 32 --batch 256 --options \
        '{"in_chans": 1, "num_classes": 10, "embed_dim": 64, "depth": 4, "num_heads": 16, "num_latents": 8}'
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import bixt
from bixt.bench.suite import machine_description

# First match wins: an op name (lower case) containing any of the fragments belongs to the class.
OP_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention kernel (SDPA)", ("scaled_dot_product", "flash_attention", "efficient_attention")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")),
    ("convolution", ("convolution", "conv2d", "mkldnn_conv")),
    ("layout copy", ("aten::copy_", "aten::contiguous", "aten::clone", "aten::_to_copy")),
    ("gelu", ("gelu",)),
    ("softmax", ("softmax",)),
    ("layer norm", ("layer_norm",)),
    ("optimizer (AdamW)", ("_foreach", "adam", "aten::lerp", "aten::addcdiv", "aten::addcmul")),
    ("reduction", ("aten::sum", "aten::mean")),
)


def op_class(name: str) -> str:
    lower = name.lower()
    for label, fragments in OP_CLASSES:
        if any(fragment in lower for fragment in fragments):
            return label
    return "other elementwise / bookkeeping"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a registered model, e.g. bixt_ti_l64_p16s4")
    parser.add_argument("--img", type=int, default=224, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 = bf16 autocast")
    parser.add_argument("--steps", type=int, default=1, help="profiled steps after one warm-up step")
    parser.add_argument("--top", type=int, default=25, help="how many single ops to list")
    parser.add_argument("--options", type=json.loads, default={}, help="model config overrides as JSON")
    args = parser.parse_args()

    torch.manual_seed(0)
    options = {"in_chans": 3, "num_classes": 1000, **args.options}
    model = bixt.create_model(args.model, img_size=args.img, **options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, options["in_chans"], args.img, args.img)
    labels = torch.randint(0, options["num_classes"], (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_class: dict[str, float] = collections.defaultdict(float)
    for e in events:
        by_class[op_class(e.key)] += e.self_cpu_time_total

    print(
        f"# {args.model} {args.options}, {args.img}px, batch {args.batch}, {args.precision}, "
        f"{args.steps} step(s) profiled"
    )
    print(
        f"# {machine_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, {platform.python_version()}, "
        f"BIXT_ATTN={os.environ.get('BIXT_ATTN', 'auto')}"
    )
    print(f"# total self CPU time {total / 1e6 / args.steps:.3f} s per step")
    print("op class | self CPU s per step | share")
    for label, micros in sorted(by_class.items(), key=lambda kv: -kv[1]):
        print(f"{label} | {micros / 1e6 / args.steps:.3f} | {100 * micros / total:.1f}%")
    print(f"\ntop {args.top} ops | calls per step | self CPU s per step | share")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(
            f"{e.key} | {e.count // args.steps} | {e.self_cpu_time_total / 1e6 / args.steps:.3f} | "
            f"{100 * e.self_cpu_time_total / total:.1f}%"
        )


if __name__ == "__main__":
    main()
