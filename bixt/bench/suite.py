"""A benchmark suite: many `BenchCase`s, each in a fresh process, interleaved over rounds, written as JSON lines.

Running every case once per round, round after round, spreads a shared machine's load changes over all cases alike,
so ratios between cases measured in one suite are fair; each case's record is then the one with its median step time.
The fp32 matmul peak is measured in the suite's own process before every round and reported as the median.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bixt import precision
from bixt.bench.throughput import BenchCase, matmul_peak_gflop_s
from bixt.fileio import atomic_write


def machine_description() -> str:
    """The CPU as benchmark headers name it: model name, and on x86 its family and model numbers and bf16 units.

    Machines of this project's kind report only "AMD EPYC" as the model name for both Zen 3 (family 25, model 1,
    no bf16 units) and Zen 4 (family 25, model 17, AVX512-BF16), whose speeds differ, so the numbers are part of it."""
    fields: dict[str, str] = {}
    try:
        for line in precision.CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():  # the first processor's block is enough
                break
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields['model']}, bf16 units: {precision.cpu_bf16_units()})"
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _run_case_process(case: BenchCase) -> dict[str, Any]:
    command = [sys.executable, "-m", "bixt.bench.throughput", json.dumps(dataclasses.asdict(case))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return dataclasses.asdict(case) | {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_suite(
    cases: Iterable[BenchCase], *, rounds: int = 1, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Measure every case `rounds` times, interleaved; one record per case (the round with the median step time,
    with every round's step time and peak memory in round order)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    cases = list(cases)
    by_case: list[list[dict[str, Any]]] = [[] for _ in cases]
    peaks = []
    for r in range(rounds):
        peaks.append(matmul_peak_gflop_s(device=cases[0].device if cases else "cpu"))
        log(f"round {r + 1}/{rounds}: fp32 matmul peak {peaks[-1]:.1f} GFLOP/s")
        for i, case in enumerate(cases):
            record = _run_case_process(case)
            by_case[i].append(record)
            log(_summary(record))
    peak = statistics.median(peaks)
    machine = machine_description()
    results = []
    for records in by_case:
        ok = [rec for rec in records if "error" not in rec]
        if not ok:
            results.append(records[-1] | {"machine": machine})
            continue
        # The record of the median round (of an even count, the faster middle one: a real measurement, not a mean);
        # the per-round lists hold every round in order, None where one failed, so that index i is round i for
        # every case (two cases' rounds pair up) and median_round indexes them.
        median = sorted(ok, key=lambda rec: rec["step_s"])[(len(ok) - 1) // 2]
        record = median | {
            "rounds": len(ok),
            "median_round": records.index(median),
            "step_s_rounds": [rec.get("step_s") for rec in records],
            "peak_mem_mb_rounds": [rec.get("peak_mem_mb") for rec in records],
            "matmul_peak_gflop_s": peak,
            "machine": machine,
        }
        record["peak_fraction"] = record["achieved_gflop_s"] / peak
        results.append(record)
    return results


def _summary(record: dict[str, Any]) -> str:
    name = f"{record['model']} n={record['tokens']} b={record['batch']} {record['mode']} {record['precision']}"
    name += f" attn={record['attn']}"
    if "error" in record:
        return f"  {name}: FAILED {record['error']}"
    if record["precision_used"] != record["precision"]:
        name += f" (ran {record['precision_used']})"
    return (
        f"  {name}: {record['step_s']:.3f} s/step, {record['samples_per_s']:.2f} samples/s, "
        f"peak {record['peak_mem_mb']:.0f} MB, {record['achieved_gflop_s']:.1f} GFLOP/s"
    )


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write one JSON object per line, never half-written (bixt.fileio)."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))
