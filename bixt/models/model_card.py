"""The model card (README.md) written beside a saved model, in the Hugging Face Hub's format (YAML front matter).

It states what the saved files are: architecture and config, parameters, FLOPs at the nominal input (paper
convention, `bixt.count_cost`), the training data and the metrics of the run when known (`TrainingSummary`), the
paper and the licence.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

CARD_NAME = "README.md"
PAPER = "Perceiving Longer Sequences With Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond)"
PAPER_URL = "https://arxiv.org/abs/2402.12138"
LICENSE = "apache-2.0"  # this project's licence; the authors' code and weights are Apache-2.0 too


@dataclass
class TrainingSummary:
    """What the card says about how the weights were made."""

    data: str  # data set name (bixt's registry) or a description, e.g. "ImageNet-1k (the authors' weights)"
    task: str | None = None
    epochs: float | None = None
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # evaluation metrics at this checkpoint
    recipe: dict[str, Any] = field(default_factory=dict)  # e.g. optimiser, lr, batch size


def training_summary(checkpoint: str | Path) -> TrainingSummary | None:
    """The summary of a training run's checkpoint (its run's config.yaml and the checkpoint's meta.json), or None
    for a directory that is not part of a run."""
    from bixt.engine.checkpoint import META_NAME, read_meta, run_dir_of
    from bixt.engine.config import load_config
    from bixt.engine.run_dir import RUN_CONFIG_NAME

    checkpoint = Path(checkpoint)
    config_path = run_dir_of(checkpoint) / RUN_CONFIG_NAME
    if not (checkpoint / META_NAME).is_file() or not config_path.is_file():
        return None
    config, meta = load_config(config_path), read_meta(checkpoint)
    same_step = meta.get("last_eval_step") == meta.get("step")
    return TrainingSummary(
        data=config.data.name,
        task=config.task,
        epochs=meta.get("epoch"),
        step=meta.get("step"),
        metrics=dict(meta.get("last_eval", {})) if same_step else {},
        recipe=dict(
            optimizer=config.optim.name,
            lr=config.optim.lr,
            weight_decay=config.optim.weight_decay,
            batch_size=config.batch_size,
            epochs=config.schedule.epochs,
        ),
    )


def _flops(model: nn.Module) -> tuple[int, str] | None:
    """FLOPs of one sample at the model's nominal input, counted on a weightless (meta) copy."""
    from bixt.bench.cost import count_cost

    try:
        with torch.device("meta"):
            shadow = type(model)(model.config)
        example = shadow.example_input(1)
        inputs = example if isinstance(example, tuple) else (example,)
        return count_cost(shadow, *inputs).flops, "x".join(str(s) for s in inputs[0].shape[1:])
    except Exception:  # a model without a nominal input cannot be counted; the card then says so
        return None


def render_model_card(model: nn.Module, *, name: str | None = None, training: TrainingSummary | None = None) -> str:
    """README.md text for `model` (see the module docstring)."""
    architecture = type(model).__name__
    title = name or architecture
    params = sum(p.numel() for p in model.parameters())
    flops = _flops(model)
    front = ["---", "library_name: bixt", f"license: {LICENSE}", "tags:", "  - bixt", "  - pytorch"]
    if training is not None:
        front += ["datasets:", f"  - {training.data}"]
    front += ["---", ""]
    lines = [
        f"# {title}",
        "",
        f"A model of the BiXT family (`{architecture}`), saved by the `bixt` package. The architecture is from "
        f"{PAPER}, NeurIPS 2024, [arXiv:2402.12138]({PAPER_URL}); the authors' code: https://github.com/mrkshllr/BiXT.",
        "",
        "```python",
        "import bixt",
        'model = bixt.from_pretrained("<this directory or Hub repo id>")',
        "```",
        "",
        "## Model",
        "",
        f"- architecture: `{architecture}`",
        f"- parameters: {params:,}",
        f"- FLOPs: {flops[0] / 1e9:.3f} G per sample at input {flops[1]} (multiply-adds, the paper's convention)"
        if flops
        else "- FLOPs: not counted (no nominal input)",
        "",
        "Config (`config.json`):",
        "",
        "```json",
        json.dumps(dataclasses.asdict(model.config), indent=2),
        "```",
        "",
        "## Training",
        "",
    ]
    if training is None:
        lines += ["Not recorded: these weights were saved outside a training run (or the run is not known).", ""]
    else:
        lines += [f"- data: {training.data}"]
        lines += [f"- task: {training.task}"] if training.task else []
        lines += [f"- epochs: {training.epochs}"] if training.epochs is not None else []
        lines += [f"- step: {training.step}"] if training.step is not None else []
        lines += [f"- {key}: {value}" for key, value in training.recipe.items()]
        lines += ["", "Evaluation at this checkpoint:", ""]
        if training.metrics:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| {key} | {value:.4f} |" for key, value in training.metrics.items()]
        else:
            lines += ["none recorded at this step"]
        lines += [""]
    lines += [
        "## Licence and citation",
        "",
        f"Licence: {LICENSE} (bixt's; check the terms of the training data). Paper: {PAPER}, NeurIPS 2024, "
        f"{PAPER_URL}.",
        "",
    ]
    return "\n".join(front + lines)


def write_model_card(
    model: nn.Module, directory: Path, *, name: str | None = None, training: TrainingSummary | None = None
) -> Path:
    from bixt.fileio import atomic_write

    path = directory / CARD_NAME
    text = render_model_card(model, name=name, training=training)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path
