"""The figures bixt writes: a learning curve also for a run stopped by a non-finite loss, and the bench plot.

What each figure shows is checked through matplotlib's objects (labels, legends, tick texts), as a reader sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

import bixt.engine.train as engine_train
from bixt.analysis import plots
from bixt.analysis.plots import PLOT_NAME, plot_run_curve
from bixt.engine.run import fit
from bixt.engine.train import NonFiniteLossError

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plot functions save, kept open for inspection."""
    kept: list = []
    plt = plots._pyplot("test", "train")
    close = plt.close
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for fig in kept:
        close(fig)


def _metrics(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_learning_curve_labels_units_and_marks_a_stop(tmp_path: Path, figures: list) -> None:
    records = [{"kind": "train", "step": s, "epoch": s / 4, "loss": 2.0 / s, "lr": 1e-3} for s in range(1, 9)]
    records.append({"kind": "eval", "step": 4, "epoch": 1.0, "loss": 0.9, "top1": 61.5})
    out = plots.plot_learning_curve(_metrics(tmp_path / "m.jsonl", records), tmp_path / "c.png", primary="top1",
                                    stopped_at=(9, 2.25))  # fmt: skip
    assert out.read_bytes()[:8] == PNG and sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "m.jsonl"]
    ax_loss, ax_metric = figures[0].axes
    assert ax_metric.get_ylabel() == "top-1 accuracy (%)"
    for ax in (ax_loss, ax_metric):
        assert "stopped: non-finite loss at step 9" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_learning_curve_of_a_run_that_failed_before_its_first_log_line(tmp_path: Path, figures: list) -> None:
    out = plots.plot_learning_curve(tmp_path / "absent.jsonl", tmp_path / "c.png", primary="miou", stopped_at=(1, 0.1))
    assert out.read_bytes()[:8] == PNG
    assert figures[0].axes[1].get_ylabel() == "mean IoU over classes (%)"


def test_a_run_stopped_by_a_nan_loss_writes_its_learning_curve(tmp_path: Path, monkeypatch) -> None:
    real_loss, calls = engine_train.compute_loss, {"n": 0}

    def nan_at_step_5(*args, **kwargs):
        calls["n"] += 1
        return real_loss(*args, **kwargs) * (float("nan") if calls["n"] == 5 else 1.0)

    monkeypatch.setattr(engine_train, "compute_loss", nan_at_step_5)
    data = tiny_images()
    with pytest.raises(NonFiniteLossError) as error:
        fit(
            tiny_config(str(tmp_path), "--run_name", "nan"),
            train_set=data,
            eval_set=data,
            learning_curve=plot_run_curve,
        )
    plot = tmp_path / "nan" / PLOT_NAME
    assert plot.read_bytes()[:8] == PNG
    assert f"learning curve up to here: {plot}" in str(error.value)


def test_bench_plot_has_a_title_a_legend_per_panel_and_plain_ticks(tmp_path: Path, figures: list) -> None:
    base = {"model": "m", "mode": "train", "precision": "fp32", "batch": 2}
    records = [
        {**base, "attn": attn, "tokens": tokens, "step_s": 0.2 * scale * tokens / 256, "peak_mem_mb": 200.0 + tokens}
        for attn, scale in (("explicit", 1.0), ("fused", 1.3))
        for tokens in (256, 1024, 4096)
    ]
    plots.plot_scaling(records, tmp_path / "scaling.png")
    fig = figures[0]
    assert fig._suptitle is not None and "bixt bench" in fig._suptitle.get_text()
    fig.canvas.draw()  # tick labels are made at drawing time
    for ax in fig.axes:
        assert ax.get_title() and len(ax.get_legend().get_texts()) == 2
        ticks = [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels()) if t.get_text()]
        assert ticks and not any("\\times" in t or "^" in t or "$" in t for t in ticks), ticks
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["256", "1024", "4096"]
