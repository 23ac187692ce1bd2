"""The learning-curve figure drawn at the end of a run: training loss per step and evaluation metrics per epoch."""

from __future__ import annotations

from pathlib import Path

from bixt.engine.metric_log import read_metrics
from bixt.fileio import atomic_write


def plot_learning_curve(metrics_path: Path, out_path: Path, *, primary: str) -> Path:
    """Two panels from metrics.jsonl: train loss (and eval loss) against epoch; eval ``primary`` against epoch."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("the learning-curve plot needs matplotlib: pip install 'bixt[train]'") from error

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
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out_path
