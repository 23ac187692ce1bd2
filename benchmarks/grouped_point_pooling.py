"""The grouped point tokenizer's group encoder as the package runs it against the PointNet written out, in whole
training and inference steps of the points study's 3- and 5-epoch model, the two interleaved round by round in one
process.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/grouped_point_pooling.py > benchmarks/grouped_point_pooling_<cpu>.txt

"written out" is the encoder before 2a6ff87: every point's features concatenated with its group's max-pooled
feature and fed whole to point_mlp2, pooling by `amax`. "package" is `GroupedPointTokenizer.encode_groups`: the pooled
half of point_mlp2's first layer once per group, pooling by `max` under gradients (`max_over_group`). Both give the
same tokens (tests/test_modalities.py). Printed: median milliseconds per step over the rounds, and written out /
package.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import bixt
from bixt.bench.suite import machine_description
from bixt.tokenizers.points import GroupedPointTokenizer

# the cells grouped-60k-3ep-scaled / grouped-60k-5ep-scaled (configs/studies/points.yaml)
MODEL_OPTIONS = dict(
    num_classes=10, coord_dims=2, in_features=1, embed_dim=64, depth=4, num_heads=4, num_latents=32,
    num_groups=64, group_size=16, max_freq=8, local_scale=6.75,
)  # fmt: skip


def written_out(tok: GroupedPointTokenizer, local: torch.Tensor) -> torch.Tensor:
    feats = tok.point_mlp1(local)
    pooled = feats.amax(dim=2, keepdim=True).expand_as(feats)
    return tok.point_mlp2(torch.cat((feats, pooled), dim=-1)).amax(dim=2)


def step_call(model: torch.nn.Module, batch: int, train: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    points, labels = torch.rand(batch, 256, 3) * 2 - 1, torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.set_grad_enabled(train):
            logits = model(points)
        if train:  # no optimizer step: the weights, and so the work, stay the same in every round
            F.cross_entropy(logits.float(), labels).backward()
            model.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_description(), f"{args.threads} thread(s), bf16 autocast, 256 points per cloud")
    model = bixt.create_model("bixt_points_cls", **MODEL_OPTIONS)
    package = GroupedPointTokenizer.encode_groups
    variants = {"written out": written_out, "package": package}
    for train, batch in ((True, 64), (True, 256), (False, 64), (False, 256)):
        model.train(train)
        step = step_call(model, batch, train)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, encode in variants.items():
                GroupedPointTokenizer.encode_groups = encode
                step()  # untimed: the first call after a switch allocates
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - start) / args.steps * 1000)
        GroupedPointTokenizer.encode_groups = package
        old, new = (statistics.median(times[name]) for name in variants)
        print(
            f"{'train' if train else 'infer'} batch {batch}: written out {old:.1f} ms, package {new:.1f} ms, "
            f"written out / package {old / new:.2f}x  (rounds: "
            + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(*times.values(), strict=True))
            + ")"
        )


if __name__ == "__main__":
    main()
