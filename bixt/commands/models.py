"""``bixt models``: the registered models with their parameter counts (and, on request, cost at their resolution)."""

from __future__ import annotations

import argparse

import torch

from bixt.models.registry import create_model, list_models


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt models", description=__doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'bixt_ti_*'")
    parser.add_argument("--flops", action="store_true", help="also count GFLOPs and activations (paper convention)")
    args = parser.parse_args(argv)

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    header = f"{'name':<34} {'params':>12}"
    if args.flops:
        from bixt.bench.cost import count_cost

        header += f" {'input':>10} {'GFLOPs':>8} {'act (M)':>8}"
    print(header)
    for name in names:
        with torch.device("meta"):  # shapes only: counting needs no values, so even the 48-GFLOP models are instant
            model = create_model(name).eval()
        line = f"{name:<34} {sum(p.numel() for p in model.parameters()):>12,}"
        if args.flops:
            example = model.example_input()
            inputs = example if isinstance(example, tuple) else (example,)  # pair / point+category models: a tuple
            cost = count_cost(model, *inputs)
            x = inputs[0]
            size = "x".join(str(s) for s in x.shape[-2:]) if x.ndim == 4 else str(tuple(x.shape))
            line += f" {size:>10} {cost.flops / 1e9:>8.3f} {cost.activations / 1e6:>8.2f}"
        print(line, flush=True)
        del model
    return 0
