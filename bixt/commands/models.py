"""``bixt models``: the registered models with their parameter counts (and, on request, their cost at their task's
input size: images at the model's img_size, sequences at its max_length, point clouds at its num_points; batch 1)."""

from __future__ import annotations

import argparse
from typing import Any

from bixt.commands import help_text

# What --flops states under the table: the costs are not at one common input size.
_COST_NOTE = (
    "Cost of one sample at its model's task input (the input column): images at img_size, token sequences at\n"
    "max_length, point clouds at num_points. One multiply-add counts as one FLOP; act = output elements of the\n"
    "matmuls and convolutions (the paper's convention, SPEC §4)."
)


def _task_input(model: Any) -> tuple[Any, ...]:
    """The model's example input at its task's nominal size, as a tuple of forward() arguments."""
    # sequence models: example_input's default length is short (quick checks); the task's is max_length
    length = getattr(model.config, "max_length", None)
    example = model.example_input() if length is None else model.example_input(length=length)
    return example if isinstance(example, tuple) else (example,)


def _describe(inputs: tuple[Any, ...]) -> str:
    """A short name for one sample's input: '3x224x224 image', '4096 ids', '2x4096 ids', '1024x3 points + category'."""
    x = inputs[0]
    if x.ndim == 4:
        text = "x".join(str(s) for s in x.shape[1:]) + " image"
    elif x.ndim == 3:
        text = f"{x.shape[1]}x{x.shape[2]} points"
    else:
        text = f"{x.shape[1]} ids"
    if len(inputs) == 2 and inputs[1].ndim == x.ndim:  # a retrieval pair: two sequences of the same length
        return f"2x{text}"
    return text + " + category" if len(inputs) == 2 else text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt models", description=help_text(__doc__))
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'bixt_ti_*'")
    parser.add_argument("--flops", action="store_true", help="also count GFLOPs and activations (paper convention)")
    args = parser.parse_args(argv)

    import torch

    from bixt.models.registry import create_model, list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    name_width = max(len("name"), *(len(n) for n in names))
    header = f"{'name':<{name_width}}  {'params':>11}"
    if args.flops:
        from bixt.bench.cost import count_cost

        header += f"  {'input (one sample)':<26} {'GFLOPs':>8} {'act (M)':>8}"
    print(header)
    for name in names:
        with torch.device("meta"):  # shapes only: counting needs no values, so even the 48-GFLOP models are quick
            model = create_model(name).eval()
        line = f"{name:<{name_width}}  {sum(p.numel() for p in model.parameters()):>11,}"
        if args.flops:
            inputs = _task_input(model)
            cost = count_cost(model, *inputs)
            line += f"  {_describe(inputs):<26} {cost.flops / 1e9:>8.3f} {cost.activations / 1e6:>8.2f}"
        print(line, flush=True)  # counting takes ~0.5 s per model: show each line as it is done
        del model
    if args.flops:
        print(f"\n{_COST_NOTE}")
    return 0
