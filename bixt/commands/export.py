"""``bixt export CHECKPOINT``: write a model as ONNX or a torch.export program, checked against the eager model.

CHECKPOINT: a save_pretrained / training checkpoint directory, a run directory (its best checkpoint), or a registered
model name with --weights (the authors' checkpoint) or without (random weights, e.g. to try a deployment path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bixt.commands import help_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt export", description=help_text(__doc__))
    parser.add_argument("checkpoint", help="checkpoint directory, run directory or registered model name")
    # checked after parsing: bixt.export imports torch, which --help does without
    parser.add_argument("--format", default="onnx", help="onnx (default) or torch-export")
    parser.add_argument("--output", type=Path, help="default: CHECKPOINT/export/model.{onnx,pt2} or ./NAME.{onnx,pt2}")
    parser.add_argument("--weights", help="official checkpoint file for a registered model name")
    parser.add_argument("--dynamic-batch", action="store_true", help="accept any batch size")
    parser.add_argument(
        "--dynamic-size",
        action="store_true",
        help="accept other image sizes (multiples of the stride), sequence lengths or point counts",
    )
    parser.add_argument(
        "--attention",
        choices=("explicit", "fused"),
        default="explicit",
        help="attention path built into the graph (default explicit: matmul + softmax, the most portable)",
    )
    args = parser.parse_args(argv)

    from bixt.export import EXPORT_FORMATS, default_output, export_model

    if args.format not in EXPORT_FORMATS:
        parser.error(f"argument --format: expected one of {', '.join(EXPORT_FORMATS)}, got {args.format!r}")
    from bixt.models.sources import load_model

    try:
        loaded = load_model(args.checkpoint, weights=args.weights)
        if not loaded.pretrained:
            print(f"bixt export: {loaded.name} has random weights (no --weights given)", file=sys.stderr)
        output = args.output or default_output(loaded.checkpoint, loaded.name, args.format)
        report = export_model(
            loaded.model,
            output,
            format=args.format,
            dynamic_batch=args.dynamic_batch,
            dynamic_size=args.dynamic_size,
            attention=args.attention,
        )
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(f"bixt export: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            dict(
                output=str(report.path),
                format=report.format,
                inputs=report.input_names,
                dynamic=report.dynamic,
                max_abs_diff_vs_eager=report.max_abs_diff,
            )
        )
    )
    return 0
