"""The figures bixt draws: a run's learning curve and the benchmark suite's log-log scaling plot.

matplotlib is optional (the ``train`` and ``bench`` extras); it is imported when a figure is drawn, with the Agg
backend because every figure goes to a file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bixt.fileio import atomic_write
from bixt.run_metrics import METRICS_NAME, read_metrics

PLOT_NAME = "learning_curve.png"  # a run's learning curve, beside its metrics.jsonl


def _pyplot(purpose: str, extra: str) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(f"the {purpose} needs matplotlib: pip install 'bixt[{extra}]'") from error
    return plt


def _save(fig: Any, path: str | Path, *, dpi: int) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


# Axis labels of the tasks' primary metrics (Task.primary_metric in bixt.engine.tasks); each is a percentage.
METRIC_LABELS = {
    "top1": "top-1 accuracy (%)",
    "miou": "mean IoU over classes (%)",
    "instance_miou": "instance mean IoU (%)",
}


def plot_learning_curve(
    metrics_path: Path, out_path: Path, *, primary: str, stopped_at: tuple[int, float] | None = None
) -> Path:
    """Two panels from metrics.jsonl: train (and eval) loss against epoch; eval ``primary`` against epoch.

    ``stopped_at`` = (step, epoch) of a run stopped by a non-finite loss: both panels mark it, so that the curve
    written for a failed run shows where it failed.
    """
    plt = _pyplot("learning-curve plot", "train")
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([r["epoch"] for r in train], [r["loss"] for r in train], label="train", lw=1)
    if evals:
        ax_loss.plot([r["epoch"] for r in evals], [r["loss"] for r in evals], "o-", label="eval")
        ax_metric.plot([r["epoch"] for r in evals], [r.get(primary, float("nan")) for r in evals], "o-", color="C1")
        title = f"evaluation: {primary}, last {evals[-1].get(primary, float('nan')):.2f} %"
    else:
        title = f"evaluation: {primary}"
        ax_metric.text(0.5, 0.5, "no evaluation yet", transform=ax_metric.transAxes, ha="center", color="0.5")
    if stopped_at is not None:
        step, epoch = stopped_at
        for ax in (ax_loss, ax_metric):
            ax.axvline(epoch, color="C3", ls="--", lw=1, label=f"stopped: non-finite loss at step {step}")
    ax_loss.set(xlabel="epoch", ylabel="loss (training objective)", title="loss")
    ax_metric.set(xlabel="epoch", ylabel=METRIC_LABELS.get(primary, primary), title=title)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return _save(fig, out_path, dpi=100)
    finally:
        plt.close(fig)


def plot_run_curve(run_dir: Path, primary: str, stopped_at: tuple[int, float] | None = None) -> Path:
    """A run directory's learning curve, drawn from its metrics.jsonl into ``run_dir/learning_curve.png`` (what
    ``bixt train`` passes to ``bixt.engine.run.fit`` as ``learning_curve``)."""
    return plot_learning_curve(run_dir / METRICS_NAME, run_dir / PLOT_NAME, primary=primary, stopped_at=stopped_at)


def _plain_number(value: float, only: tuple[int, ...] | None = None) -> str:
    """A tick label as a plain decimal (0.002, 3136), not 2x10^-3; with ``only``, just for those leading digits."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** math.floor(math.log10(value)), 6)
    if only is not None and leading not in only:
        return ""
    return f"{value:.12f}".rstrip("0").rstrip(".")


def plot_scaling(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Log-log plot of time per sample and peak memory against tokens, one line per (model, mode, precision, attn).

    Tick labels are plain numbers (the measured token counts on x), and each panel has its own legend.
    """
    plt = _pyplot("scaling plot", "bench")
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    series: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if "error" not in rec:
            label = f"{rec['model']} {rec['mode']} {rec['precision']} attn={rec['attn']} b={rec['batch']}"
            series.setdefault(label, []).append(rec)
    tokens_measured = sorted({rec["tokens"] for recs in series.values() for rec in recs})
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(13, 5))
    for label, recs in sorted(series.items()):
        recs.sort(key=lambda rec: rec["tokens"])
        tokens = [rec["tokens"] for rec in recs]
        ax_time.plot(tokens, [rec["step_s"] / rec["batch"] for rec in recs], "o-", label=label)
        ax_mem.plot(tokens, [rec["peak_mem_mb"] for rec in recs], "o-", label=label)
    panels = (
        (ax_time, "time per sample", "seconds per sample (one timed step / batch)"),
        (ax_mem, "peak memory", "peak resident memory of the process (MB)"),
    )
    for ax, title, ylabel in panels:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(tokens_measured)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _plain_number(value)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(title=title, xlabel="tokens per sample", ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if series:
            ax.legend(fontsize=7)
        low, high = ax.get_ylim()
        if high < 10 * low:  # under a decade a log axis has no power of ten to label: evenly spaced plain ticks
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:  # powers of ten, and the minor ticks at 2 and 5 x 10^k
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: _plain_number(value, only=(2, 5))))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _plain_number(value)))
    fig.suptitle("bixt bench: cost against tokens (log-log; median of the rounds)")
    fig.tight_layout()
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)
