"""Evaluate a saved checkpoint exactly as its run evaluated it (same config, data split and input processing)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bixt.engine.builders import build_augment, load_split, make_loader, resolve_device, resolve_run_precision
from bixt.engine.checkpoint import load_weights, read_meta, resolve_checkpoint, run_dir_of
from bixt.engine.config import ConfigError, load_config
from bixt.engine.distributed import env_info, init_distributed
from bixt.engine.run_dir import RUN_CONFIG_NAME
from bixt.engine.tasks import declared_inputs, get_task
from bixt.engine.train import EvalSettings, evaluate
from bixt.models.serialization import from_pretrained


@dataclass
class EvalReport:
    checkpoint: Path
    step: int
    split: str
    num_items: int
    metrics: dict[str, float]
    logged: dict[str, float] = field(default_factory=dict)  # what the run logged for these weights, if it did


def evaluate_checkpoint(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    ema: bool = False,
    device: str | None = None,
    data_options: dict[str, Any] | None = None,
) -> EvalReport:
    """`data_options`: merged into the run's ``data.options`` (nested mappings key by key), to evaluate the same
    weights on other data of the same data set, e.g. longer generated sequences."""
    checkpoint = resolve_checkpoint(path, prefer="best")
    config_path = run_dir_of(checkpoint) / RUN_CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"{config_path} not found: the checkpoint must sit in its run directory")
    config = load_config(config_path)
    if device is not None:
        config = dataclasses.replace(config, device=device)
    if data_options:
        options = merged_options(config.data.options, data_options)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, options=options))
    info = env_info()
    torch_device = resolve_device(config, info)
    init_distributed(info, torch_device)

    model = from_pretrained(checkpoint, map_location=torch_device).to(torch_device)
    if ema:
        load_weights(model, checkpoint, ema=True)
    # a run's saved config holds the precision it resolved; `auto` (a config written by hand) is resolved here alike
    config = dataclasses.replace(config, precision=resolve_run_precision(config, torch_device, model).precision)
    split = split or config.data.eval_split
    dataset = load_split(config, split, limit if limit is not None else config.data.eval_limit)
    loader, _ = make_loader(
        dataset, config, info, train=False, batch_size=batch_size or config.eval_batch_size or config.batch_size
    )
    settings = EvalSettings(
        config=config,
        task=get_task(config.task),
        device=torch_device,
        info=info,
        padded=config.data.collate == "padded",
        model_inputs=declared_inputs(model),
        num_classes=getattr(model, "num_classes", None),
        augment=build_augment(config, train=False, num_classes=getattr(model, "num_classes", 0), device=torch_device),
    )
    metrics = evaluate(model, loader, settings)
    meta = read_meta(checkpoint)
    same_data = (
        not data_options and split == config.data.eval_split and (limit is None or limit == config.data.eval_limit)
    )
    logged = meta.get("last_eval", {}) if same_data and meta.get("last_eval_step") == meta["step"] else {}
    if ema:
        logged = {k.removeprefix("ema_"): v for k, v in logged.items() if k.startswith("ema_")}
    else:
        logged = {k: v for k, v in logged.items() if not k.startswith("ema_")}
    return EvalReport(checkpoint, meta["step"], split, len(dataset), metrics, logged)


def merged_options(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; where both hold a mapping under one key, the two are merged likewise."""
    merged = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merged_options(merged[key], value) if both else value
    return merged
