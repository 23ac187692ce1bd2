"""Distributed data parallel through torchrun's environment: process group, samplers, reductions.

``torchrun --nproc_per_node=N -m bixt train ...`` (and multi-node with torchrun's --nnodes/--rdzv arguments) sets
RANK, LOCAL_RANK and WORLD_SIZE; without them the run is a single process and nothing here does any communication.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables (single process when they are absent)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPUs) when there is more than one process."""
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place on a copy); the identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    reduced = tensor.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (batch norm's running statistics) on every process. Each process updates its own from its
    shard of every training batch, and checkpoints hold rank 0's, so an evaluation must use those to be the
    checkpoint's. A no-op in a single process."""
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_string(value: str | None) -> str:
    """Rank 0's string on every process (e.g. the run directory it named)."""
    if not (dist.is_available() and dist.is_initialized()):
        assert value is not None
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler (seeded shuffle per epoch, rank-strided shards) that can start part-way into an epoch.

    ``set_epoch(epoch, start=k)`` skips this process's first k samples of that epoch, so a run resumed after k
    samples sees exactly the samples an uninterrupted run would have seen next. With one process it is a plain
    seeded shuffle over the whole data set.
    """

    def __init__(self, dataset: Dataset, info: DistInfo, *, shuffle: bool, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler[int]):
    """Evaluation shards without padding or duplicates: process r takes items r, r + W, r + 2W, ...

    Metric sums reduced over processes then count every item exactly once.
    """

    def __init__(self, dataset: Dataset, info: DistInfo) -> None:
        self.indices = range(info.rank, len(dataset), info.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
