"""The figures bixt draws: a run's learning curve and the benchmark suite's log-log scaling plot.

matplotlib is optional (the ``train`` and ``bench`` extras); it is imported when a figure is drawn, with the Agg
backend because every figure goes to a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bixt.engine.metric_log import read_metrics
from bixt.fileio import atomic_write


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


def plot_learning_curve(metrics_path: Path, out_path: Path, *, primary: str) -> Path:
    """Two panels from metrics.jsonl: train loss (and eval loss) against epoch; eval ``primary`` against epoch."""
    plt = _pyplot("learning-curve plot", "train")
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([r["epoch"] for r in train], [r["loss"] for r in train], label="train", lw=1)
    if evals:
        ax_loss.plot([r["epoch"] for r in evals], [r["loss"] for r in evals], "o-", label="eval")
        ax_metric.plot([r["epoch"] for r in evals], [r.get(primary, float("nan")) for r in evals], "o-", color="C1")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_metric.set(xlabel="epoch", ylabel=primary, title=f"eval {primary}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return _save(fig, out_path, dpi=100)
    finally:
        plt.close(fig)


def plot_scaling(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Log-log plot of time per sample and peak memory against tokens, one line per (model, mode, precision, attn)."""
    plt = _pyplot("scaling plot", "bench")
    series: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if "error" not in rec:
            label = f"{rec['model']} {rec['mode']} {rec['precision']} attn={rec['attn']} b={rec['batch']}"
            series.setdefault(label, []).append(rec)
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, recs in sorted(series.items()):
        recs.sort(key=lambda rec: rec["tokens"])
        tokens = [rec["tokens"] for rec in recs]
        ax_time.plot(tokens, [rec["step_s"] / rec["batch"] for rec in recs], "o-", label=label)
        ax_mem.plot(tokens, [rec["peak_mem_mb"] for rec in recs], "o-", label=label)
    for ax, ylabel in ((ax_time, "seconds per sample"), (ax_mem, "peak resident memory (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend(fontsize=7)
    fig.tight_layout()
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)
