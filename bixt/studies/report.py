"""``bixt study report``: every run of a study into results.jsonl, a README.md with tables, and the study's plots.

One record per (cell, seed) that the runner has touched, failed and interrupted runs included; tables aggregate the
finished ones as mean ± unbiased std over seeds. Costs are counted on the run's own model and input in the paper's
convention (multiply-adds, activations as output elements of matmuls and convolutions, batch 1).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bixt.analysis import study_plots
from bixt.analysis.plots import plot_scaling
from bixt.analysis.run_data import epoch_checkpoints, eval_images, model_at, run_config
from bixt.analysis.symmetry import MEASURES, layer_attention, measure_symmetry
from bixt.bench.cost import count_cost
from bixt.engine.tasks import PRIMARY_METRIC
from bixt.fileio import atomic_write
from bixt.run_metrics import METRICS_NAME, read_metrics
from bixt.studies import checks
from bixt.studies.evaluations import evaluation_path, read_evaluation
from bixt.studies.runner import plan, read_record
from bixt.studies.spec import Study, StudyError

RESULTS_NAME = "results.jsonl"
README_NAME = "README.md"
# Test images the symmetry measures average over, and the images of the Figure-1 grid.
SYMMETRY_IMAGES = 1000
GRID_IMAGES = 2
# Test clouds the point-order check evaluates twice per run (the first ones of the run's evaluation split).
POINT_ORDER_ITEMS = 2000


def _train_rate(records: list[dict[str, Any]], batch_size: int) -> float | None:
    """Training samples/s over consecutive train records with no evaluation between them (evaluation excluded)."""
    samples, seconds = 0, 0.0
    for before, after in itertools.pairwise(records):
        if before["kind"] == after["kind"] == "train" and after["step"] > before["step"]:
            samples += (after["step"] - before["step"]) * batch_size
            seconds += after["time"] - before["time"]
    return samples / seconds if seconds > 0 else None


def earlier_records(results: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The runs an earlier report at `results` (a results.jsonl) recorded, by (cell, seed); none if it is absent."""
    if not results.is_file():
        return {}
    kept = {}
    for number, line in enumerate(results.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            message = f"{results}, line {number}: not a JSON record ({error.msg}); restore it from git"
            raise StudyError(message) from None
        if not {"cell", "seed", "status"} <= set(record):
            raise StudyError(f"{results}, line {number}: a run record needs cell, seed and status; restore it from git")
        if record["status"] != "not run":
            kept[(record["cell"], record["seed"])] = record
    return kept


def collect(
    study: Study, *, root: Path, quick: bool, earlier: dict[tuple[str, int], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One record per planned run that has a runner record. A run with none under `root` (its directory on another
    machine) keeps its record from `earlier`, marked `carried_over`; never-started runs are listed as "not run"."""
    records = []
    for run in plan(study, root=root, seeds=None, cells=None, quick=quick):
        runner = read_record(run)
        base: dict[str, Any] = {"study": study.name, "cell": run.cell, "seed": run.seed, "run_dir": str(run.run_dir)}
        if runner is None:
            kept = (earlier or {}).get((run.cell, run.seed))
            records.append({**kept, "carried_over": True} if kept else {**base, "status": "not run"})
            continue
        base |= {
            "status": runner.status,
            "returncode": runner.returncode,
            "wall_s": runner.wall_s,
            "attempts": runner.attempts,
            "threads": runner.threads,
            "cpu": runner.cpu,
            "commit": runner.commit,
            "command": " ".join(runner.command[1:]).replace(" -m bixt ", "bixt ", 1),
        }
        if not (run.run_dir / METRICS_NAME).is_file():
            records.append(base)
            continue
        _, config = run_config(run.run_dir)
        metrics = read_metrics(run.run_dir / METRICS_NAME)
        evals = [r for r in metrics if r["kind"] == "eval"]
        primary = PRIMARY_METRIC[config.task]
        with torch.device("meta"):  # shapes only: counting needs no values
            model = model_at(config, None)
        example = model.example_input()
        inputs = example if isinstance(example, tuple) else (example,)  # pair and point+category models: a tuple
        cost = count_cost(model, *inputs)
        best = max(evals, key=lambda r: r[primary]) if evals else None
        base |= {
            "model": config.model.name,
            # what the run started with; a record older than that field has only the spec's, and says so
            "overrides": run.overrides if runner.overrides is None else runner.overrides,
            "overrides_recorded": runner.overrides is not None,
            "epochs": config.schedule.epochs,
            "train_items": config.data.train_limit,
            "primary": primary,
            "final": {k: v for k, v in evals[-1].items() if k not in ("kind", "time")} if evals else None,
            "best": {"epoch": best["epoch"], primary: best[primary]} if best else None,
            "params": sum(p.numel() for p in model.parameters()),
            "flops": cost.flops,
            "activations": cost.activations,
            "input_shape": [list(x.shape[1:]) for x in inputs],
            "train_samples_per_s": _train_rate(metrics, config.batch_size),
            "eval_curve": [(r["epoch"], r[primary]) for r in evals],
            "config": {
                "embed_dim": getattr(model.config, "embed_dim", None),
                "num_latents": getattr(model.config, "num_latents", None),
                "num_tokens": getattr(model.config, "num_tokens", None),
                "depth": getattr(model.config, "depth", None),
            },
        }
        if study.evaluations is not None and run.cell in study.evaluations.cells:
            base["evaluations"] = {
                e.name: read_evaluation(evaluation_path(run.run_dir, study.evaluations, e, quick=quick))
                for e in study.evaluations.sets
            }
        if "point-order" in study.checks and runner.status == "finished":
            base["point_order"] = checks.point_order(run.run_dir, limit=POINT_ORDER_ITEMS)
        records.append(base)
    return records


def _final(record: dict[str, Any]) -> float | None:
    if record.get("status") != "finished" or not record.get("final"):
        return None
    return record["final"][record["primary"]]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def _pm(values: list[float]) -> str:
    if not values:
        return "—"
    mean, std = _mean_std(values)
    return f"{mean:.2f} ± {std:.2f}" if not math.isnan(std) else f"{mean:.2f}"


def _by_cell(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    cells: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        cells.setdefault(record["cell"], []).append(record)
    return cells


def _first_with(runs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in runs if r.get(key) is not None), None)


def _runs_table(records: list[dict[str, Any]]) -> list[str]:
    """Every run of the grid, failed and unfinished ones included."""
    lines = [
        "| cell | seed | status | final (metric) | best (epoch) | train samples/s | wall time | threads | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        final = _final(r)
        best = r.get("best")
        primary = r.get("primary", "top1")
        rate = r.get("train_samples_per_s")
        shown = f"{final:.2f} ({primary})" if final is not None else "—"
        status = f"{r['status']}, from an earlier report" if r.get("carried_over") else r["status"]
        lines.append(
            f"| {r['cell']} | {r['seed']} | {status} | {shown} | "
            + (f"{best[primary]:.2f} ({best['epoch']:g}) | " if best else "— | ")
            + (f"{rate:.0f} | " if rate else "— | ")
            + (f"{r['wall_s'] / 60:.1f} min | {r['threads']} | {r['commit']} |" if "wall_s" in r else "— | — | — |")
        )
    if any(r.get("carried_over") for r in records):
        lines += [
            "",
            'Runs marked "from an earlier report" have no run directory where this report was made; their records '
            "are carried over unchanged from the results.jsonl this report replaced.",
        ]
    return lines


def _machine_line(records: list[dict[str, Any]]) -> str:
    cpus = sorted({r["cpu"] for r in records if r.get("cpu")})
    total = sum(r.get("wall_s", 0.0) * r.get("threads", 1) for r in records)
    return (
        f"Compute: {total / 3600:.2f} core-hours in all (wall time x threads, summed over runs) on "
        f"{', '.join(cpus) or 'an unrecorded CPU'}; runs shared the machine two at a time."
    )


def _comparison(study: Study, records: list[dict[str, Any]], out: Path, quick: bool) -> tuple[list[str], list[Path]]:
    cells = _by_cell(records)
    finished = {cell: [v for v in map(_final, runs) if v is not None] for cell, runs in cells.items()}
    costed = {cell: _first_with(runs, "flops") for cell, runs in cells.items()}
    primaries = sorted({r["primary"] for r in records if r.get("primary")})
    flops = [r["flops"] for r in costed.values() if r]
    budget = statistics.fmean(flops) if flops else float("nan")
    lines = [
        f"| cell | model | test {' / '.join(primaries)} (%), mean ± std | runs | per seed | params | "
        "MFLOPs | activations | "
        "train samples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for cell, runs in cells.items():
        c = costed[cell]
        values = finished[cell]
        rates = [r["train_samples_per_s"] for r in runs if r.get("train_samples_per_s")]
        per_seed = " / ".join(f"{v:.2f}" for v in values) or "—"
        cost = f"{c['flops'] / 1e6:.2f}" if c else "—"
        if c and study.matched_cost:
            cost += f" ({100 * (c['flops'] / budget - 1):+.1f}% vs mean)"
        lines.append(
            f"| {cell} | {c['model'] if c else '—'} | {_pm(values)} | {len(values)} of {len(runs)} | {per_seed} | "
            f"{c['params']:,} | {cost} | {c['activations'] / 1e3:.1f}k | "
            f"{f'{statistics.fmean(rates):.0f}' if rates else '—'} |"
            if c
            else f"| {cell} | — | — | 0 of {len(runs)} | — | — | — | — | — |"
        )
        if values and c:
            rows.append({"label": cell, "mflops": c["flops"] / 1e6, "values": values})
    shapes = sorted({str(c["input_shape"]) for c in costed.values() if c})
    lines += [
        "",
        f"MFLOPs and activations are per sample at the input shape of each model's `example_input()`, "
        f"{' / '.join(shapes) or 'none'} (for sequence and point models a fixed size, which may differ from the "
        "cell's data).",
    ]
    spread = max(abs(f / budget - 1) for f in flops) if flops else float("nan")
    if study.matched_cost:
        lines += ["", f"Every cell costs within {100 * spread:.1f}% of the grid's mean of {budget / 1e6:.2f} MFLOPs."]
    for claim in study.orderings:
        lines += ["", *_ordering(finished, claim)]
    lines += _point_order(records)
    metric = f"test {' / '.join(primaries)} (%): seeds (dots), mean ± std"
    plot = (
        study_plots.plot_cell_comparison(rows, out / "comparison.png", title=study.title, ylabel=metric)
        if rows
        else None
    )
    return lines, [plot] if plot else []


def _ordering(finished: dict[str, list[float]], ordering: tuple[tuple[str, ...], ...]) -> list[str]:
    """A claimed ranking (groups of cells, low to high) checked for every cell against every cell of the next group."""
    pairs = [(low, high) for lower, higher in itertools.pairwise(ordering) for low in lower for high in higher]
    claim = " < ".join("{" + ", ".join(group) + "}" if len(group) > 1 else group[0] for group in ordering)
    lines = [
        f"The claimed ordering {claim}, pair by pair — the difference of means in units of its standard error,",
        "sqrt(s1²/n1 + s2²/n2):",
        "",
    ]
    diffs = []  # per pair: high's mean minus low's, None where seeds are missing
    for low, high in pairs:
        a, b = finished.get(low, []), finished.get(high, [])
        if len(a) < 2 or len(b) < 2:
            lines.append(f"- {low} < {high}: not enough finished seeds to say")
            diffs.append(None)
            continue
        diff = statistics.fmean(b) - statistics.fmean(a)
        se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
        z = diff / se if se > 0 else math.copysign(math.inf, diff) if diff else 0.0
        diffs.append(diff)
        verdict = "holds" if diff > 0 else "does NOT hold" if diff < 0 else "does NOT hold (a tie)"
        lines.append(f"- {low} < {high}: {verdict}: {high} {diff:+.2f} points, {z:+.1f} standard errors")
    against, ties = sum(d is not None and d < 0 for d in diffs), diffs.count(0.0)
    if None in diffs:
        summary = "cannot be decided yet (runs missing)"
    elif not against and not ties:
        summary = "holds in every pair"
    else:
        parts = [
            f"{against} of {len(diffs)} pairs go the other way" if against else "",
            f"{ties} of {len(diffs)} pairs tie" if ties else "",
        ]
        summary = "does not hold: " + ", ".join(part for part in parts if part)
    lines += ["", f"**The ordering {summary}.**"]
    return lines


def _point_order(records: list[dict[str, Any]]) -> list[str]:
    """Each checked run's accuracy on its test clouds as stored and with every cloud's points permuted."""
    checked = [r for r in records if r.get("point_order")]
    if not checked:
        return []
    lines = [
        "",
        "Point order (`bixt.analysis.point_order`): each run's last checkpoint on its first test clouds as stored "
        "and with the points of every cloud randomly permuted (seed 1), same batches and precision.",
        "",
        "| cell | seed | clouds | top1 as stored | top1 permuted | change | largest logit change |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in checked:
        c = r["point_order"]
        lines.append(
            f"| {r['cell']} | {r['seed']} | {c['num_items']:,} | {c['top1']:.2f} | {c['top1_permuted']:.2f} | "
            f"{c['top1_permuted'] - c['top1']:+.2f} | {c['max_logit_change']:.2g} |"
        )
    return lines


def _evaluations(study: Study, records: list[dict[str, Any]], out: Path) -> tuple[list[str], list[Path]]:
    """The extra evaluations: per cell and set, the primary metric over seeds, and a plot against the sets' axis
    beside the first bench invocation's training throughput (when measured) on the same axis."""
    evaluations = study.evaluations
    if evaluations is None:
        return [], []
    checked = [r for r in records if r.get("evaluations")]
    items = f"the first {evaluations.limit:,} items" if evaluations.limit else "as many items as the run evaluated"
    lines = [
        "",
        "## Evaluated on other data",
        "",
        f"The last checkpoint of every finished run of {', '.join(evaluations.cells)} evaluated again, on {items} "
        "of each set below (`bixt eval RUN/checkpoints/last --data-options OPTIONS`; each run's `evaluations` field in "
        f"{RESULTS_NAME} holds the results). The table shows the primary metric (%), mean ± std over seeds; each "
        f"column is a set and its place on the plot's axis ({evaluations.axis}).",
        "",
        f"| cell | {' | '.join(f'{e.name}: {e.x:g}' for e in evaluations.sets)} |",
        "|---|" + "---|" * len(evaluations.sets),
    ]
    series = {}
    for cell, runs in _by_cell(checked).items():
        row, points = [], []
        for e in evaluations.sets:
            values = [r["evaluations"][e.name]["metrics"][r["primary"]] for r in runs if r["evaluations"].get(e.name)]
            row.append(f"{_pm(values)} ({len(values)} of {len(runs)})")
            if values:
                points.append((e.x, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0))
        lines.append(f"| {cell} | {' | '.join(row)} |")
        series[cell] = points
    lines += ["", "Data options of each set (merged into the run's own `data.options`):", ""]
    lines += [f"- {e.name}: `{json.dumps(e.options)}`" for e in evaluations.sets]
    if not any(series.values()):
        return [*lines, "", f"None evaluated yet: `bixt study run {study.name}` evaluates its finished runs."], []
    throughput = []
    if study.bench and bench_path(out, 0).is_file():
        throughput = _bench_records(bench_path(out, 0))
    plot = study_plots.plot_by_axis(
        series,
        [r for r in throughput if r.get("mode") == "train" and "error" not in r],
        out / "evaluations.png",
        xlabel=evaluations.axis,
        title=study.title,
    )
    return lines, [plot]


def bench_path(out: Path, index: int, *, plot: bool = False) -> Path:
    """Where the study's `index`-th bench invocation writes (``bench.jsonl``, then ``bench-2.jsonl``, ...), or with
    `plot` where its throughput plot goes (``throughput.png``, ``throughput-2.png``, ...)."""
    stem, suffix = ("throughput", ".png") if plot else ("bench", ".jsonl")
    return out / (f"{stem}{suffix}" if index == 0 else f"{stem}-{index + 1}{suffix}")


def _bench_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bench_command(study: Study, out: Path, index: int = 0) -> str:
    """The `index`-th `bixt bench` invocation of the study, behind one throughput table."""
    return f"bixt bench {study.bench[index]} --out {bench_path(out, index)}"


def _bench(study: Study, out: Path, index: int = 0) -> tuple[list[str], list[Path]]:
    """The throughput table of one bench invocation's records: samples/s per model, side by side, and the ratio of
    the first model to each other one (all cases from one invocation, interleaved rounds, so the ratios are fair)."""
    command = bench_command(study, out, index)
    path = bench_path(out, index)
    heading = ["", "## Throughput" if index == 0 else f"## Throughput, invocation {index + 1}", ""]
    if not path.is_file():
        return [*heading, f"Not measured yet: `{command}`."], []
    records = _bench_records(path)
    models = list(dict.fromkeys(r["model"] for r in records))
    cases = sorted({(r["mode"], r["batch"], r["tokens"]) for r in records})
    by_case = {(r["mode"], r["batch"], r["tokens"], r["model"]): r for r in records}
    machine = records[0].get("machine", "an unrecorded machine")
    threads = sorted({r["threads"] for r in records if "threads" in r})
    first, others = models[0], models[1:]
    lines = [
        *heading,
        f"One invocation, every case in a fresh process, cases interleaved over rounds (median kept), on {machine}, "
        f"{'/'.join(map(str, threads)) or 'unrecorded'} thread(s) per case: `{command}`. Samples/s; "
        f"ratio = {first} / the other model.",
        "",
        "| mode | batch | tokens | "
        + " | ".join(f"{m} samples/s" for m in models)
        + " | "
        + " | ".join(f"ratio vs {m}" for m in others)
        + " | peak MB ("
        + " / ".join(models)
        + ") |",
        "|---|---|---|" + "---|" * (2 * len(models) - 1) + "---|",
    ]
    for mode, batch, tokens in cases:
        row = [by_case.get((mode, batch, tokens, m)) for m in models]
        rates = [r["samples_per_s"] if r and "error" not in r else None for r in row]
        shown = [f"{v:.2f}" if v is not None else "failed" for v in rates]
        ratios = [f"{rates[0] / v:.2f}x" if rates[0] and v else "—" for v in rates[1:]]
        memory = " / ".join(f"{r['peak_mem_mb']:.0f}" if r and "error" not in r else "—" for r in row)
        lines.append(f"| {mode} | {batch} | {tokens:,} | " + " | ".join(shown + ratios) + f" | {memory} |")
    failed = [r for r in records if "error" in r]
    lines += [f"- {r['model']} {r['mode']} b={r['batch']} n={r['tokens']} failed: {r['error']}" for r in failed]
    return lines, [plot_scaling(records, bench_path(out, index, plot=True))]


def _scaling(study: Study, records: list[dict[str, Any]], out: Path, quick: bool) -> tuple[list[str], list[Path]]:
    cells = _by_cell(records)
    points = []  # (tokens, latents, width, mean top-1, MFLOPs, cell, every seed's top-1)
    for cell, runs in cells.items():
        values = [v for v in map(_final, runs) if v is not None]
        c = _first_with(runs, "flops")
        if c and values:
            cfg = c["config"]
            points.append(
                (
                    cfg["num_tokens"],
                    cfg["num_latents"],
                    cfg["embed_dim"],
                    statistics.fmean(values),
                    c["flops"] / 1e6,
                    cell,
                    values,
                )
            )
    if not points:
        return ["No finished runs yet."], []
    widths = sorted({p[2] for p in points})
    base_width = max(widths, key=lambda w: sum(p[2] == w for p in points))  # the width most cells share
    token_points = [p for p in points if p[2] == base_width]
    tokens = sorted({p[0] for p in token_points})
    latents = sorted({p[1] for p in token_points})
    lines = [f"Test top-1 (%, mean ± std over seeds) and MFLOPs by tokens and latents (width {base_width}):", ""]
    lines += ["| latents \\ tokens | " + " | ".join(str(t) for t in tokens) + " |", "|---" * (len(tokens) + 1) + "|"]
    for m in latents:
        row = []
        for t in tokens:
            hit = [p for p in token_points if p[0] == t and p[1] == m]
            row.append(f"{_pm(hit[0][6])} ({hit[0][4]:.1f} MFLOPs, n={len(hit[0][6])})" if hit else "—")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", *_linearity(token_points)]
    series = {m: [(p[0], p[3], p[4]) for p in token_points if p[1] == m] for m in latents}
    plots = [study_plots.plot_token_scaling(series, out / "tokens_latents.png", title=study.title)]
    fixed = [p for p in points if (p[0], p[1]) == _width_axis(points, base_width)]
    if len(fixed) > 1:
        lines += [
            "",
            f"By width ({fixed[0][0]} tokens, {fixed[0][1]} latents):",
            "",
            "| width | test top-1 (%) | MFLOPs |",
            "|---|---|---|",
        ]
        lines += [f"| {p[2]} | {_pm(p[6])} (n={len(p[6])}) | {p[4]:.2f} |" for p in sorted(fixed, key=lambda p: p[2])]
        plots.append(
            study_plots.plot_width_scaling([(p[2], p[3], p[4]) for p in fixed], out / "width.png", title=study.title)
        )
    return lines, plots


def _width_axis(points: list[tuple], base_width: int) -> tuple[int, int]:
    """The (tokens, latents) at which widths other than the base width were run."""
    others = [(p[0], p[1]) for p in points if p[2] != base_width]
    return others[0] if others else (-1, -1)


def _linearity(points: list[tuple]) -> list[str]:
    """Least-squares line FLOPs = a + b * tokens per latent count, and the largest relative residual."""
    lines = []
    for m in sorted({p[1] for p in points}):
        series = sorted((p[0], p[4]) for p in points if p[1] == m)
        if len(series) < 3:
            continue
        slope, intercept = statistics.linear_regression([s[0] for s in series], [s[1] for s in series])
        worst = max(abs(intercept + slope * t - f) / f for t, f in series)
        lines.append(
            f"- {m} latents: MFLOPs = {intercept:.3f} + {slope:.4f} x tokens; largest deviation from the line "
            f"{100 * worst:.4f}%"
        )
    return ["FLOPs against tokens (least-squares line per latent count):", "", *lines] if lines else []


def _symmetry(study: Study, records: list[dict[str, Any]], out: Path, quick: bool) -> tuple[list[str], list[Path]]:
    images_count = 64 if quick else SYMMETRY_IMAGES
    trajectories: dict[str, list[tuple[int, dict[str, float]]]] = {}
    finals: dict[str, Any] = {}
    grid_entries = []
    grid_latents, grid_layer = [0, 1, 2, 3], -2  # the last two-way layer (the last layer is one-sided)
    for record in records:
        if record.get("status") != "finished" or record.get("carried_over"):
            continue  # a carried-over run's checkpoints are not here to measure
        run_dir, config = run_config(record["run_dir"])
        images = eval_images(config, images_count)
        label = f"{record['cell']} seed {record['seed']}"
        states = [(0, None), *epoch_checkpoints(run_dir)]
        trajectory = []
        for epoch, checkpoint in states:
            scores = measure_symmetry(model_at(config, checkpoint), images.inputs)
            trajectory.append((epoch, scores.summary()))
        trajectories[label] = trajectory
        finals[label] = scores
        _, maps = layer_attention(model_at(config, states[-1][1]), images.inputs[:GRID_IMAGES], grid_layer)
        for i in range(GRID_IMAGES):
            grid_entries.append(
                (f"{record['cell']}, image {i}", images.raw[i], maps.latents_to_tokens[i], maps.tokens_to_latents[i])
            )
    carried = sum(r.get("status") == "finished" and bool(r.get("carried_over")) for r in records)
    note = [f"Not measured here: {carried} finished runs of an earlier report, whose checkpoints are elsewhere.", ""]
    note = note if carried else []
    if not trajectories:
        return [*note, "No finished runs here yet."], []
    lines = [
        *note,
        f"Mean over {images_count} test images, all two-way layers and heads; chance = latents permuted.",
        "",
        "| run | epoch | logit corr. | chance | map corr. | chance |",
        "|---|---|---|---|---|---|",
    ]
    for label, trajectory in trajectories.items():
        for epoch, s in trajectory:
            lines.append(
                f"| {label} | {epoch if epoch else 'init'} | {s['logit']:.3f} | {s['logit_chance']:.3f} | "
                f"{s['map']:.3f} | {s['map_chance']:.3f} |"
            )
    series = {}
    for label, trajectory in trajectories.items():
        for measure in MEASURES:
            series[f"{label}: {measure}"] = [(e, s[measure]) for e, s in trajectory]
            series[f"{label}: {measure} chance"] = [(e, s[f"{measure}_chance"]) for e, s in trajectory]
    plots = [
        study_plots.plot_symmetry_trajectory(
            series, out / "symmetry_trajectory.png", title="symmetry of the two attention directions over training"
        )
    ]
    panels = {(label, m): scores.scores[m] for label, scores in finals.items() for m in MEASURES}
    layers = next(iter(finals.values())).layers
    plots.append(
        study_plots.plot_symmetry_heatmaps(
            panels, layers, out / "symmetry_heatmap.png", title="after training, per layer and head"
        )
    )
    lines += ["", "Per layer and head after the last epoch:", ""]
    for label, scores in finals.items():
        for m in MEASURES:
            cells = "; ".join(
                f"layer {layer + 1}: " + ", ".join(f"{v:.3f}" for v in row)
                for layer, row in zip(scores.layers, scores.scores[m].tolist(), strict=True)
            )
            lines.append(f"- {label}, {m}: {cells}")
    plots.append(
        study_plots.plot_attention_grid(
            grid_entries,
            out / "figure1_attention.png",
            latents=grid_latents,
            title="where 4 latents attend and which regions attend to them (last two-way layer, head mean, "
            "colours per panel)",
        )
    )
    return lines, plots


RENDERERS: dict[str, Callable[..., tuple[list[str], list[Path]]]] = {
    "comparison": _comparison,
    "scaling": _scaling,
    "symmetry": _symmetry,
}


def write_report(study: Study, *, root: Path, out: Path, quick: bool = False) -> list[Path]:
    """results.jsonl, README.md and the plots of `study` into `out`; returns the files written."""
    records = collect(study, root=root, quick=quick, earlier=earlier_records(out / RESULTS_NAME))
    if not any(r["status"] != "not run" for r in records):
        raise StudyError(f"study {study.name!r} has no runs under {root}; run `bixt study run {study.name}` first")
    out.mkdir(parents=True, exist_ok=True)
    body, plots = RENDERERS[study.kind](study, records, out, quick)
    evaluation_lines, evaluation_plots = _evaluations(study, records, out)
    body, plots = [*body, *evaluation_lines], [*plots, *evaluation_plots]
    for index in range(len(study.bench)):
        bench_lines, bench_plots = _bench(study, out, index)
        body, plots = [*body, *bench_lines], [*plots, *bench_plots]
    flag = " --quick" if quick else ""
    seeds = " ".join(map(str, study.seeds))
    own_seeds = [
        f"{cell}: {' '.join(map(str, study.cell_seeds(cell)))}"
        for cell in study.cells
        if study.cell_seeds(cell) != study.seeds
    ]
    if own_seeds:
        seeds += f" ({'; '.join(own_seeds)})"
    readme = [
        f"# {study.title}",
        "",
        study.notes,
        "",
        f"Reproduce: `bixt study run {study.name}{flag} --jobs 2 && bixt study report {study.name}{flag}` "
        f"(from the repository root; the grid is `{study.path}`, recipe `{study.recipe}`, seeds {seeds}). "
        f"One cell: `bixt study run {study.name} --cells CELL --seeds SEED`.",
        "",
        _machine_line(records),
        "",
        "## Results",
        "",
        *body,
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
        "## Every run",
        "",
        *_runs_table(records),
        "",
        f"Per-run records: [{RESULTS_NAME}]({RESULTS_NAME}); each run's exact command is in its `command` field.",
    ]
    results = out / RESULTS_NAME
    atomic_write(results, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in records)))
    atomic_write(out / README_NAME, lambda tmp: tmp.write_text("\n".join(readme) + "\n"))
    return [results, out / README_NAME, *plots]
