"""What one training forward pass keeps for its backward pass: every tensor autograd saves, counted once per storage
and grouped by shape, for a registered image model (what issue 14's peak-memory target at 3,136 tokens is made of).

    python benchmarks/saved_activations.py bixt_ti_l64_p16s4 --batch 2 > benchmarks/saved_activations_ti_s4_b2.txt

Counts storages, so a view saved twice (or a weight saved by every call) is counted once; peak memory adds the
weights, the optimizer state, the gradients and whatever the backward pass allocates on top of this.
"""

from __future__ import annotations

import argparse
import collections

import torch

import bixt
from bixt.bench.suite import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a registered image model, e.g. bixt_ti_l64_p16s4")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--img", type=int, default=224)
    parser.add_argument("--top", type=int, default=12, help="how many shape groups to list")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = bixt.create_model(args.model, num_classes=1000).train()
    images = torch.randn(args.batch, 3, args.img, args.img)
    storages: dict[int, int] = {}
    by_shape: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in storages:
            storages[storage.data_ptr()] = storage.nbytes()
            key = (tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
            by_shape[key] += storage.nbytes()
            count[key] += 1
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images)
    total = sum(storages.values())
    setting = f"{args.model}, batch {args.batch}, {args.img}x{args.img}"
    print(f"{machine_description()}; {setting}, torch {torch.__version__}")
    print(f"saved for backward: {total / 2**20:.1f} MiB in {len(storages)} storages")
    print(f"{'shape':<28} {'dtype':<9} {'tensors':>7} {'MiB':>9} {'share':>6}")
    for (shape, dtype), nbytes in by_shape.most_common(args.top):
        print(f"{shape!s:<28} {dtype:<9} {count[shape, dtype]:>7} {nbytes / 2**20:>9.1f} {nbytes / total:>6.1%}")


if __name__ == "__main__":
    main()
