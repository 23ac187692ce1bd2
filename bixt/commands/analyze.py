"""``bixt analyze attention CHECKPOINT_OR_RUN --out FILE.png [--images N] [--layer L] [--latents ...]``

Draws the paper's Figure 1 for a trained image model: for a few latents of one cross-attention layer, where each
latent attends and which image regions attend to it, on test images of the run's own evaluation split (processed
as its evaluation processed them). The authors' weights work too: pass the official checkpoint file with
``--official-model NAME`` and a folder of images (one sub-folder per class) with ``--image-folder DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bixt.commands import help_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bixt analyze", description=help_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="analysis", required=True)
    attention = sub.add_parser("attention", help="draw where latents attend and what attends to them (Figure 1)")
    attention.add_argument("path", help="a run directory, a checkpoint directory, or an official weights file")
    attention.add_argument("--out", type=Path, required=True, help="the PNG to write")
    attention.add_argument("--images", type=int, default=2, help="how many test images to draw (default 2)")
    attention.add_argument("--layer", type=int, default=-2, help="cross-attention layer, from 0; negative from the end")
    attention.add_argument("--latents", type=int, nargs="+", default=[0, 1, 2, 3], help="latents to draw")
    attention.add_argument("--official-model", help="registered model name when PATH is an official weights file")
    attention.add_argument("--image-folder", type=Path, help="images for official weights (one folder per class)")
    return parser


def _own_run(path: str, count: int):
    from bixt.analysis.run_data import eval_images, model_at, run_config
    from bixt.engine.checkpoint import resolve_checkpoint

    _, config = run_config(path)
    images = eval_images(config, count)
    run_dir = Path(path).resolve()
    label = f"{run_dir.parent.name}/{run_dir.name}"  # e.g. sequential/seed-0 for a study cell
    return model_at(config, resolve_checkpoint(path, prefer="best")), images.raw, images.inputs, label


def _official(path: str, name: str, folder: Path | None, count: int):
    import torch

    from bixt.convert import load_official
    from bixt.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset
    from bixt.models.registry import create_model

    if folder is None:
        raise ValueError("official weights need --image-folder DIR (one sub-folder per class) to draw on")
    model = load_official(create_model(name), path).eval()
    size = model.config.img_size
    dataset = ImageFolderDataset(folder, image_size=size)
    raw = torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])
    inputs = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return model, raw, inputs, name


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from bixt.analysis.study_plots import plot_attention_grid
    from bixt.analysis.symmetry import layer_attention
    from bixt.engine.config import ConfigError

    try:
        if args.images < 1:
            raise ValueError(f"--images must be >= 1, got {args.images}")
        if args.official_model:
            model, raw, inputs, label = _official(args.path, args.official_model, args.image_folder, args.images)
        else:
            model, raw, inputs, label = _own_run(args.path, args.images)
        layer, maps = layer_attention(model, inputs, args.layer)
        num_latents = maps.latents_to_tokens.shape[1]
        bad = [latent for latent in args.latents if not 0 <= latent < num_latents]
        if bad:
            raise ValueError(f"latents {bad} do not exist: the model has {num_latents} (0..{num_latents - 1})")
        to_latents = maps.tokens_to_latents
        entries = [
            (
                f"{label}, image {i}",
                raw[i],
                maps.latents_to_tokens[i],
                to_latents[i] if to_latents is not None else None,
            )
            for i in range(raw.shape[0])
        ]
        out = plot_attention_grid(
            entries,
            args.out,
            latents=args.latents,
            title=f"{label}: cross-attention layer {layer + 1} (head mean; colours scaled per panel)",
        )
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"bixt analyze: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0
