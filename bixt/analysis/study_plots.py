"""The studies' figures: accuracy against cost, scaling curves, symmetry heatmaps and trajectories, and the paper's
Figure 1 (where latents attend, and what attends to them) drawn on real test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bixt.analysis.plots import _pyplot, _save


def plot_cell_comparison(rows: list[dict[str, Any]], path: Path, *, title: str, ylabel: str) -> Path:
    """One column per cell: every seed's result as a dot, the mean ± std as a bar; rows: label, values, mflops."""
    plt = _pyplot("study plot", "train")
    # A column is as wide as its longest label needs at font size 8 (about 0.075 in per character), 1.5 in at least.
    column = max([1.5, *(0.075 * len(r["label"]) for r in rows)])
    fig, ax = plt.subplots(figsize=(max(6.0, column * len(rows) + 2), 4.5), layout="constrained")
    for i, row in enumerate(rows):
        values = row["values"]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        ax.errorbar(i, mean, yerr=std, fmt="s", capsize=6, color=f"C{i}", markersize=7)
        ax.plot([i + 0.12] * len(values), values, "o", color=f"C{i}", alpha=0.5, markersize=4)
    ax.set_xticks(range(len(rows)), [f"{r['label']}\n{r['mflops']:.2f} MFLOPs" for r in rows], fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.set_xlim(-0.5, len(rows) - 0.5)
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)


def plot_by_axis(
    series: dict[str, list[tuple[float, float, float]]],
    throughput: list[dict[str, Any]],
    path: Path,
    *,
    xlabel: str,
    title: str,
) -> Path:
    """Left: each cell's metric (mean ± std) against a numeric axis, e.g. sequence length; right, when given, training
    samples/s of bench records (one line per model and batch) against tokens, on the same log-2 axis."""
    plt = _pyplot("study plot", "train")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    panels = 2 if throughput else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), layout="constrained", squeeze=False)
    ax = axes[0][0]
    for i, (cell, points) in enumerate(series.items()):
        points = sorted(points)
        ax.errorbar(
            [p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], fmt="o-", capsize=4,
            color=f"C{i}", label=cell,
        )  # fmt: skip
    ax.set(xlabel=xlabel, ylabel="test metric (%), mean ± std over seeds", title="accuracy")
    if throughput:
        lines: dict[str, list[tuple[int, float]]] = {}
        for record in throughput:
            lines.setdefault(f"{record['model']} b={record['batch']}", []).append(
                (record["tokens"], record["samples_per_s"])
            )
        right = axes[0][1]
        for label, points in sorted(lines.items()):
            points.sort()
            right.plot([p[0] for p in points], [p[1] for p in points], "s--", label=label)
        right.set(xlabel="tokens per sample", ylabel="training samples/s", title="training throughput (bixt bench)")
        right.set_yscale("log")
        right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        right.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ticks = sorted({p[0] for points in series.values() for p in points} | {r["tokens"] for r in throughput})
    for panel in axes[0]:
        panel.set_xscale("log", base=2)
        panel.set_xticks(ticks)  # the measured values, as plain numbers
        panel.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        panel.xaxis.set_minor_formatter(NullFormatter())
        panel.grid(alpha=0.3, which="both")
        panel.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)


def _accuracy_and_cost(
    lines: list[tuple[str, list[tuple[float, float, float]], str]], path: Path, *, xlabel: str, title: str
) -> Path:
    """Accuracy (solid, left axis) and MFLOPs (dashed, right axis) against one x axis; lines: (label, [(x, top-1 %,
    MFLOPs)], colour), one legend for both axes beside the plot."""
    plt = _pyplot("study plot", "train")
    fig, ax = plt.subplots(figsize=(9.5, 4.5), layout="constrained")
    ax_cost = ax.twinx()
    for label, points, colour in lines:
        points = sorted(points)
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], "o-", color=colour, label=f"{label}accuracy")
        ax_cost.plot(xs, [p[2] for p in points], "s--", color=colour, alpha=0.6, label=f"{label}MFLOPs")
    ax.set(xlabel=xlabel, ylabel="test top-1 accuracy (%)", title=title)
    ax_cost.set_ylabel("MFLOPs per image (dashed)")
    ax.grid(alpha=0.3)
    (handles, labels), (cost_handles, cost_labels) = ax.get_legend_handles_labels(), ax_cost.get_legend_handles_labels()
    ax.legend(handles + cost_handles, labels + cost_labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.12, 1.0))
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)


def plot_token_scaling(series: dict[int, list[tuple[int, float, float]]], path: Path, *, title: str) -> Path:
    """Figure 3 (left) at small scale. series: latents -> [(tokens, top-1 %, MFLOPs)]; accuracy solid, FLOPs dashed."""
    lines = [(f"{latents} latents: ", points, f"C{i}") for i, (latents, points) in enumerate(sorted(series.items()))]
    return _accuracy_and_cost(lines, path, xlabel="tokens per image", title=title)


def plot_width_scaling(points: list[tuple[int, float, float]], path: Path, *, title: str) -> Path:
    """Figure 3 (right) at small scale: (width, top-1 %, MFLOPs) points, accuracy solid and FLOPs dashed."""
    return _accuracy_and_cost([("", points, "C0")], path, xlabel="embedding width", title=title)


def plot_symmetry_heatmaps(
    panels: dict[tuple[str, str], torch.Tensor], layers: list[int], path: Path, *, title: str
) -> Path:
    """Layer x head heatmaps, one row per run and one column per measure: panels[(run, measure)] is (layers, heads)."""
    plt = _pyplot("study plot", "train")
    runs = list(dict.fromkeys(run for run, _ in panels))
    measures = list(dict.fromkeys(measure for _, measure in panels))
    fig, axes = plt.subplots(
        len(runs),
        len(measures),
        figsize=(3.4 * len(measures) + 1, 2.6 * len(runs) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for r, run in enumerate(runs):
        for c, measure in enumerate(measures):
            ax, values = axes[r][c], panels[(run, measure)]
            image = ax.imshow(values.numpy(), vmin=-1, vmax=1, cmap="RdBu_r", aspect="auto")
            for row in range(values.shape[0]):
                for col in range(values.shape[1]):
                    value = float(values[row, col])
                    ink = "white" if abs(value) > 0.6 else "black"  # readable on the darkest cells too
                    ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color=ink)
            ax.set_title(f"{run}\n{measure} correlation", fontsize=9)
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_xticks(range(values.shape[1]))
            ax.set_yticks(range(values.shape[0]), [str(layer + 1) for layer in layers])
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="correlation (1 = symmetric)")
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)


def plot_symmetry_trajectory(series: dict[str, list[tuple[int, float]]], path: Path, *, title: str) -> Path:
    """Measure against epoch (0 = initialisation), one line per series name; series named "... chance" dotted, in
    the colour of the series before them."""
    plt = _pyplot("study plot", "train")
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    colour = -1
    for name, points in series.items():
        chance = name.endswith("chance")
        colour += 0 if chance else 1
        ax.plot([p[0] for p in points], [p[1] for p in points], ":" if chance else "o-", color=f"C{colour}", label=name)
    ax.set(xlabel="epoch (0 = initialisation)", ylabel="correlation (mean over layers, heads, images)", title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)


def _overlay(ax: Any, image: torch.Tensor, heat: torch.Tensor, grid: int) -> None:
    """Draw `image` (c, H, W) in grey with `heat` (tokens,) reshaped to grid x grid and upsampled on top."""
    size = image.shape[-1]
    heat = heat.reshape(1, 1, grid, grid)
    heat = F.interpolate(heat, size=(size, size), mode="nearest")[0, 0]
    ax.imshow(image.mean(dim=0), cmap="gray")
    ax.imshow(heat, cmap="magma", alpha=0.6)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_attention_grid(
    entries: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]],
    path: Path,
    *,
    latents: list[int],
    title: str,
) -> Path:
    """The paper's Figure 1: for each entry and chosen latent, where the latent attends (latents -> tokens, softmax
    over tokens) and, in the row below, which regions attend to it (tokens -> latents, softmax over latents).

    entries: (label, image (c, H, W) as stored, latents_to_tokens (m, n), tokens_to_latents (n, m) or None for a
    one-sided layer), maps head-averaged for that image and layer. Tokens must form a square grid.
    """
    plt = _pyplot("attention grid", "train")
    rows = [
        (label, image, to_tokens if direction == "attends to" else to_latents.T, direction)
        for label, image, to_tokens, to_latents in entries
        for direction in ("attends to", "is attended by")
        if direction == "attends to" or to_latents is not None
    ]
    fig, axes = plt.subplots(
        len(rows), len(latents) + 1, figsize=(1.9 * (len(latents) + 1), 2.0 * len(rows)), squeeze=False
    )
    for r, (label, image, heat_by_latent, direction) in enumerate(rows):
        grid = round(heat_by_latent.shape[1] ** 0.5)
        if grid * grid != heat_by_latent.shape[1]:
            raise ValueError(f"{heat_by_latent.shape[1]} tokens do not form a square grid")
        axes[r][0].imshow(image.mean(dim=0), cmap="gray")
        axes[r][0].set_xticks([])
        axes[r][0].set_yticks([])
        axes[r][0].set_ylabel(f"{label}\nlatent {direction}", fontsize=8)
        for c, latent in enumerate(latents, start=1):
            _overlay(axes[r][c], image, heat_by_latent[latent], grid)
            if r == 0:
                axes[r][c].set_title(f"latent {latent}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, path, dpi=110)
    finally:
        plt.close(fig)
