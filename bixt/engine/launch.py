"""How many processes a CPU run trains with (``processes`` of the recipe), and the torchrun launch that gives them.

``processes: auto`` means two data-parallel processes of half the cores' threads each on a CPU with AVX-512 and at
least two cores, one process elsewhere. A model as small as the main job's spends its step in many small operations
(autocast's casts, softmaxes over rows of 8 or 16, thousands of tiny matmuls) that a second thread barely splits,
while a second process runs its own half of the batch. Measured as whole runs of 100 steps of the main job (start-up
and final evaluation included) on 2-core machines, 2 processes of 1 thread against 1 process of 2 threads
(`benchmarks/main_job_ddp_pairs.sh`, README "Main job"): on an AMD EPYC Zen 4 (AVX-512) 0.78-0.92x the wall time in
bf16 and 0.82-0.91x in fp32; on an AMD EPYC Zen 3 (AVX2 only) in fp32, where two threads do split the step, 1.05-1.06x
with 2 heads and 1.00-1.03x with the 16 heads of today's recipe, so AVX2-only CPUs keep one process. Intel Xeons with
AVX-512 fall under the rule unmeasured. The gradients are averaged over the processes (`bixt.engine.distributed`), so
the global batch and the schedule are the recipe's either way; only batch norm's statistics come from each process's
half of the batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import torch

from bixt.engine.builders import resolve_device
from bixt.engine.config import RunConfig
from bixt.engine.distributed import DistInfo
from bixt.precision import cpu_flags


@dataclass(frozen=True)
class ProcessChoice:
    """How many processes of how many threads a run uses, what was asked for, and why (the start-up report)."""

    processes: int
    threads: int | None
    requested: str
    reason: str

    def describe(self) -> str:
        threads = "" if self.threads is None else f" of {self.threads} thread(s)"
        return f"processes {self.processes}{threads} (asked: {self.requested}; {self.reason})"


def choose_processes(requested: int | str, device: torch.device, avx512: bool, cores: int) -> ProcessChoice:
    """`requested` (``auto`` or N) -> the processes for a run on `device` (on a CPU with AVX-512 or not)."""
    if requested != "auto":
        count = int(requested)
        threads = max(1, cores // count) if device.type == "cpu" and count > 1 else None
        return ProcessChoice(count, threads, str(requested), "as configured")
    if device.type != "cpu":
        return ProcessChoice(1, None, requested, f"{device.type} device: one process per device is torchrun's job")
    if not avx512:
        return ProcessChoice(1, None, requested, "CPU without AVX-512: a second thread splits the step as well")
    if cores < 2:
        return ProcessChoice(1, None, requested, "one core")
    return ProcessChoice(2, cores // 2, requested, "CPU with AVX-512: two processes use the cores better than threads")


def under_torchrun() -> bool:
    """Whether this process is one of a torchrun launch (which then decides the processes, not the recipe)."""
    return "WORLD_SIZE" in os.environ


def launch_processes(choice: ProcessChoice, train_argv: list[str], *, set_threads: bool) -> int:
    """Run ``bixt train train_argv`` as `choice.processes` processes on this machine (torchrun, standalone), each with
    `choice.threads` threads if `set_threads`; returns the launch's exit status, non-zero if any process failed.

    Ctrl-C reaches the processes as well (one process group): each stops at its next step with a checkpoint, so this
    waits for them instead of leaving them behind; SIGTERM is passed on to torchrun, which passes it on to them."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={choice.processes}",
        "-m", "bixt", "train", *train_argv,
    ]  # fmt: skip
    env = dict(os.environ)
    if set_threads and choice.threads is not None:
        command += ["--threads", str(choice.threads)]
        env.setdefault("OMP_NUM_THREADS", str(choice.threads))  # else torchrun sets 1 and prints a banner saying so
    launch = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: launch.terminate())
    try:
        while True:
            try:
                return launch.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan_processes(config: RunConfig) -> ProcessChoice:
    """The processes `config` asks for on this machine, with ``auto`` resolved for its device and CPU."""
    device = resolve_device(config, DistInfo())
    return choose_processes(config.processes, device, "avx512f" in cpu_flags(), usable_cores())


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count where they differ)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
