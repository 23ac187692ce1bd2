"""``bixt predict CHECKPOINT_OR_MODEL INPUT...``: top-k classes of image files (or folders of them).

CHECKPOINT_OR_MODEL: a training checkpoint or run directory (the run's preprocessing and class names), or a registered
image classifier with --weights (the authors' checkpoint: ImageNet preprocessing and class names).
"""

from __future__ import annotations

import argparse
import json
import sys

from bixt.commands import help_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt predict", description=help_text(__doc__))
    parser.add_argument("source", help="checkpoint directory, run directory, or registered model name (+ --weights)")
    parser.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--weights", help="the authors' checkpoint file, for a registered model name")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per image on stdout")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    args = parser.parse_args(argv)

    from bixt.models.sources import load_model
    from bixt.predict import UnreadableImageError, image_files, predict_files, preprocessing_for

    unreadable: list[str] = []

    def report_unreadable(error: UnreadableImageError) -> None:
        unreadable.append(str(error))
        print(f"bixt predict: skipped {error}", file=sys.stderr)

    try:
        loaded = load_model(args.source, weights=args.weights)
        if not loaded.pretrained:
            raise ValueError(f"{args.source} would have random weights: pass --weights (the authors' checkpoint)")
        if not hasattr(loaded.model.config, "img_size") or not hasattr(loaded.model, "num_classes"):
            raise ValueError(f"{loaded.name} is not an image classifier")
        files = image_files(args.inputs)
        prep, names = preprocessing_for(loaded)
        predictions = predict_files(
            loaded.model.to(args.device),
            files,
            prep,
            names,
            top_k=args.top_k,
            batch_size=args.batch_size,
            on_error=report_unreadable,
        )
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"bixt predict: {error}", file=sys.stderr)
        return 2
    if not args.jsonl:
        print(f"# {loaded.name}; preprocessing: {prep.description}; class names: {'yes' if names else 'indices only'}")
    for prediction in predictions:
        if args.jsonl:
            top = [dict(index=i, name=name, probability=round(p, 6)) for i, name, p in prediction.top]
            print(json.dumps(dict(file=prediction.file, top=top)))
        else:
            ranked = ", ".join(f"{name if name is not None else i} {p:.3f}" for i, name, p in prediction.top)
            print(f"{prediction.file}: {ranked}")
    return 1 if unreadable else 0
