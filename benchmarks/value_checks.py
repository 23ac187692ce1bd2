"""Cost of the value checks (bixt.value_checks) per training step: on and off interleaved in one process.

For each model a padded batch is trained step by step with the value checks on and off in alternation (so that load
changes on a shared machine hit both alike), and the checks themselves are timed alone on that batch; medians are
printed. On a CPU a host synchronisation costs nothing beyond the reductions; on a GPU each check also stalls the
queue of kernels once per forward pass (not measured here: no GPU was lent).

    OMP_NUM_THREADS=1 python benchmarks/value_checks.py --repeats 20

AMD EPYC (Zen 4, avx512_bf16), 1 thread, on a machine shared with other jobs (so the on/off step times differ by
noise, in both directions; the checks alone are the figure to read):

    model                 batch   step on ms   step off ms   checks alone ms   checks / step
    bixt_points_partseg      16        937.5         904.2             0.384          0.04%
    bixt_points_cls          16        507.7         551.5             0.387          0.08%
    bixt_lra_text            16        122.8         120.5             0.260          0.21%
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import bixt
from bixt.bench.suite import machine_description
from bixt.models.encoder import check_token_mask
from bixt.tokenizers.points import check_points
from bixt.value_checks import value_checks

# small models of each family whose inputs the checks read (a padded batch for each)
CASES = {
    "bixt_points_partseg": dict(num_points=256),
    "bixt_points_cls": dict(num_points=256),
    "bixt_lra_text": dict(),
}


def padded_inputs(model: torch.nn.Module, batch: int) -> tuple[tuple[torch.Tensor, ...], dict]:
    """A batch with padding (the second half of the samples lose their last quarter) in the model's input form."""
    inputs = model.example_input(batch)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    if inputs[0].dtype.is_floating_point:  # point clouds: a mask
        mask = torch.ones(inputs[0].shape[:2], dtype=torch.bool)
        mask[batch // 2 :, -inputs[0].shape[1] // 4 :] = False
        return inputs, {"mask": mask}
    return inputs, {}  # sequences: example_input already pads with id 0


def checks_alone(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], kwargs: dict) -> None:
    """The value checks one forward pass runs on this batch, by themselves."""
    first = inputs[0]
    if first.dtype.is_floating_point:
        check_points(first, first.shape[-1], kwargs.get("mask"))
        if hasattr(model.tokenizer, "check_enough_points"):
            model.tokenizer.check_enough_points(first, kwargs.get("mask"))
        if len(inputs) > 1:
            model.head.check_category(inputs[1], first.shape[0])
        mask = kwargs.get("mask") if not hasattr(model.tokenizer, "num_groups") else None
        if mask is not None:
            check_token_mask(mask, torch.empty(*mask.shape, 1))
    else:
        model.tokenizer.check_input(first)
        check_token_mask(first != 0, torch.empty(*first.shape, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(machine_description(), f"threads={torch.get_num_threads()}")
    print(f"{'model':<22}{'batch':>5}{'step on ms':>13}{'step off ms':>14}{'checks alone ms':>18}{'checks / step':>16}")
    for name, options in CASES.items():
        torch.manual_seed(0)
        model = bixt.create_model(name, **options).train()
        inputs, kwargs = padded_inputs(model, args.batch)
        times: dict[bool, list[float]] = {True: [], False: []}
        alone = []
        for repeat in range(args.repeats + 2):
            for enabled in (True, False) if repeat % 2 else (False, True):
                with value_checks(enabled):
                    start = time.perf_counter()
                    model(*inputs, **kwargs).float().square().mean().backward()
                    if repeat >= 2:  # two warm-up repeats
                        times[enabled].append(time.perf_counter() - start)
            start = time.perf_counter()
            checks_alone(model, inputs, kwargs)
            alone.append(time.perf_counter() - start)
        on, off = (statistics.median(times[flag]) * 1e3 for flag in (True, False))
        checks = statistics.median(alone) * 1e3
        print(f"{name:<22}{args.batch:>5}{on:>13.1f}{off:>14.1f}{checks:>18.3f}{checks / on:>15.2%}")


if __name__ == "__main__":
    main()
