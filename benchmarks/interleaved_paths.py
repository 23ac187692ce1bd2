"""Training-step time of attention paths interleaved in one process: for differences smaller than the machine's noise.

`bixt bench` runs every case in a process of its own (so that each has its own peak memory); minutes pass between the
cases, and on a shared machine that alone moves step times by 10-20%. Here the paths alternate step by step on one
model (in forward and reverse order on alternate repeats), so that load changes hit them alike; the median is printed.

    python benchmarks/interleaved_paths.py bixt_ti_l64_p16s4 --img 56 --batch 8 --repeats 8
    python benchmarks/interleaved_paths.py bixt_ti_cnv_l64_d13_p8 --img 32 --batch 256 --repeats 15 \\
        --options '{"in_chans": 1, "num_classes": 10, "embed_dim": 64, "depth": 4, "num_heads": 2, "num_latents": 8}'
    python benchmarks/interleaved_paths.py transformer_lra_text --length 1024 --batch 8 --paths explicit fused chunked

With ``--precisions fp32 bf16`` every path runs in each precision (bf16 = bf16 autocast), interleaved alike; ratios
are against the first path in the first precision.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import time

import torch
import torch.nn.functional as F

import bixt
from bixt.bench.suite import machine_description
from bixt.layers.attention_paths import set_attention_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--img", type=int, help="image models: image side in pixels")
    size.add_argument("--length", type=int, help="sequence models (e.g. transformer_lra_text): tokens per sample")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--options", type=json.loads, default={}, help="model config overrides as JSON")
    parser.add_argument("--paths", nargs="+", default=["explicit", "fused", "auto"])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.img is not None:
        model = bixt.create_model(args.model, img_size=args.img, **args.options)
        inputs = torch.randn(args.batch, model.config.in_chans, args.img, args.img)
        tokens = model.tokenizer(inputs[:1]).tokens.shape[1]
    else:
        model = bixt.create_model(args.model, **args.options)
        inputs = model.example_input(args.batch, args.length)  # random ids, some samples padded
        tokens = args.length
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.randint(0, model.config.num_classes, (args.batch,))
    cases = [f"{path} {precision}" for path, precision in itertools.product(args.paths, args.precisions)]
    times: dict[str, list[float]] = {case: [] for case in cases}
    for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
        for case in cases if repeat % 2 else cases[::-1]:
            path, precision = case.split()
            set_attention_path(path)
            bf16 = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
            start = time.perf_counter()
            with bf16:
                loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if repeat:
                times[case].append(time.perf_counter() - start)
    medians = {case: statistics.median(values) for case, values in times.items()}
    print(f"{args.model} {args.options} tokens={tokens} batch={args.batch} threads={torch.get_num_threads()}")
    print(f"# {machine_description()}")
    for case, median in medians.items():
        print(f"  {case:14s} {median * 1000:8.1f} ms/step  ({medians[cases[0]] / median:.2f}x {cases[0]})")


if __name__ == "__main__":
    main()
