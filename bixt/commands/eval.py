"""``bixt eval CHECKPOINT_OR_RUN_DIR``: evaluate a checkpoint on its run's evaluation split, beside the logged figures.

A run directory means its best checkpoint (else its last). The run's saved config.yaml decides the data, the
task and the input processing, so the result reproduces the evaluation logged during training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bixt.commands import help_text, json_mapping


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt eval", description=help_text(__doc__))
    parser.add_argument("path", help="a checkpoint directory (runs/NAME/checkpoints/step-N) or a run directory")
    parser.add_argument("--split", help="data split to evaluate (default: the run's eval split)")
    parser.add_argument(
        "--limit", type=_positive, help="evaluate only the first N items (default: the run's eval_limit)"
    )
    parser.add_argument("--batch-size", type=_positive, help="evaluation batch size (default: the run's)")
    parser.add_argument("--ema", action="store_true", help="evaluate the EMA weights instead of the raw weights")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the run's)")
    parser.add_argument(
        "--data-options",
        type=json_mapping,
        help="a JSON object merged into the run's data.options, to evaluate on other data of the same data set "
        '(e.g. longer generated ListOps: \'{"config": {"min_length": 1000, "max_length": 2000}}\')',
    )
    parser.add_argument(
        "--json", type=Path, help="also write the result to this JSON file (written whole or not at all)"
    )
    args = parser.parse_args(argv)
    # The engine is imported only for a real evaluation: `bixt eval --help` must not import torch.
    from bixt.engine.config import ConfigError
    from bixt.engine.evaluation import evaluate_checkpoint

    try:
        report = evaluate_checkpoint(
            args.path,
            split=args.split,
            limit=args.limit,
            batch_size=args.batch_size,
            ema=args.ema,
            device=args.device,
            data_options=args.data_options,
        )
    except (ConfigError, FileNotFoundError, ValueError) as error:  # ValueError: a damaged checkpoint, named
        print(f"bixt eval: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint: {report.checkpoint} (step {report.step}), split {report.split}, {report.num_items} items")
    for key, value in report.metrics.items():
        logged = report.logged.get(key)
        suffix = f"   (logged at this step: {logged:.4f})" if logged is not None else ""
        print(f"  {key:<16} {value:.4f}{suffix}")
    if args.json is not None:
        from bixt.fileio import atomic_write

        result = {
            "checkpoint": str(report.checkpoint),
            "step": report.step,
            "split": report.split,
            "num_items": report.num_items,
            "data_options": args.data_options or {},
            "metrics": report.metrics,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=1) + "\n"))
    return 0
