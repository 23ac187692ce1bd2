"""Classify image files with a trained model: the checkpoint's own preprocessing, top-k classes with names.

Preprocessing and class names follow where the model came from:
- a training run's checkpoint: the run's evaluation input path (``augment`` of its config.yaml: normalisation with the
  statistics of training, padding) at the run's image size, and the data set's class names;
- a registered model with the authors' weights: their ImageNet evaluation (bicubic resize of the short side to
  size / 0.875, centre crop, ImageNet mean / std) and the ImageNet-1k class names shipped in timm's package data
  (read as files, timm is not imported); without timm installed, class indices only;
- a bare save_pretrained directory: resize to the model's img_size, no normalisation, class indices.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bixt.data.images import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD
from bixt.models.sources import LoadedModel

CROP_PCT = 0.875


class UnreadableImageError(ValueError):
    pass


@dataclass
class Preprocessing:
    """How a file becomes a model input: decode to `channels` and resize to `size` (plain, or the short side to
    size / crop_pct then a centre crop), then `batch_transform` on the (b, c, h, w) batch in [0, 1]."""

    channels: int
    size: int
    crop_pct: float | None  # None: resize straight to size x size
    batch_transform: Callable[[torch.Tensor], torch.Tensor]
    description: str


def image_files(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The image files named, folders expanded (recursively, sorted); FileNotFoundError for a missing path."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise FileNotFoundError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def read_image(path: Path, prep: Preprocessing) -> torch.Tensor:
    """path -> float (channels, size, size) in [0, 1]; UnreadableImageError naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if prep.channels == 1 else "RGB")
            if prep.crop_pct is None:
                img = img.resize((prep.size, prep.size), Image.Resampling.BICUBIC)
            else:
                scale = math.floor(prep.size / prep.crop_pct) / min(img.size)
                width, height = (max(prep.size, round(s * scale)) for s in img.size)
                img = img.resize((width, height), Image.Resampling.BICUBIC)
                left, top = (width - prep.size) // 2, (height - prep.size) // 2
                img = img.crop((left, top, left + prep.size, top + prep.size))
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableImageError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err
    tensor = torch.from_numpy(array.copy()).float().div(255.0)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def imagenet_class_names() -> tuple[str, ...] | None:
    """The 1000 ImageNet-1k class names (first lemma of each WordNet synset, in the usual class order) from timm's
    package data, or None if timm is not installed."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return tuple(lemmas[s].split(",")[0].strip() for s in synsets)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def preprocessing_for(loaded: LoadedModel) -> tuple[Preprocessing, Sequence[str] | None]:
    """The preprocessing and class names for `loaded` (see the module docstring)."""
    config = loaded.model.config
    if loaded.checkpoint is None:  # a registered name with the authors' weights
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        prep = Preprocessing(
            channels=config.in_chans,
            size=config.img_size,
            crop_pct=CROP_PCT,
            batch_transform=lambda x: (x - mean) / std,
            description=f"ImageNet evaluation: resize {math.floor(config.img_size / CROP_PCT)}, crop {config.img_size}",
        )
        return prep, imagenet_class_names()
    from bixt.engine.checkpoint import STATE_NAME, run_dir_of
    from bixt.engine.config import load_config
    from bixt.engine.run_dir import RUN_CONFIG_NAME

    run_config_path = run_dir_of(loaded.checkpoint) / RUN_CONFIG_NAME
    if not (loaded.checkpoint / STATE_NAME).is_file() or not run_config_path.is_file():
        prep = Preprocessing(config.in_chans, config.img_size, None, _identity, "resize only (no run config found)")
        return prep, None
    return _run_preprocessing(loaded.model, load_config(run_config_path))


def _run_preprocessing(model: nn.Module, run_config) -> tuple[Preprocessing, Sequence[str] | None]:
    from bixt.engine.builders import build_augment, load_split
    from bixt.engine.tasks import Batch

    augment = build_augment(run_config, train=False, num_classes=model.num_classes, device=torch.device("cpu"))

    def transform(x: torch.Tensor) -> torch.Tensor:
        return x if augment is None else augment(Batch((x,), torch.zeros(x.shape[0], dtype=torch.long))).inputs[0]

    size = model.config.img_size - 2 * run_config.augment.pad  # the data set's size: padding is part of the path
    description = f"the run's evaluation path ({run_config.data.name}: augment.image={run_config.augment.image})"
    try:
        dataset = load_split(run_config, run_config.data.eval_split, 1)
        names = getattr(getattr(dataset, "dataset", dataset), "classes", None)
    except Exception:  # the data set is not fetched here: predict with class indices rather than fail
        names = None
    return Preprocessing(model.config.in_chans, size, None, transform, description), names


@dataclass
class Prediction:
    file: str
    top: list[tuple[int, str | None, float]]  # (class index, name, probability), most likely first


def predict_files(
    model: nn.Module,
    files: Sequence[Path],
    prep: Preprocessing,
    names: Sequence[str] | None,
    *,
    top_k: int = 5,
    batch_size: int = 32,
    on_error: Callable[[UnreadableImageError], None] | None = None,
) -> list[Prediction]:
    """Top-k predictions per readable file; unreadable ones go to `on_error` (or raise without it)."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    model = model.eval()
    device = next(model.parameters()).device
    predictions: list[Prediction] = []
    for start in range(0, len(files), batch_size):
        batch_files, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(read_image(path, prep))
                batch_files.append(path)
            except UnreadableImageError as err:
                if on_error is None:
                    raise
                on_error(err)
        if not images:
            continue
        with torch.no_grad():
            probs = F.softmax(model(prep.batch_transform(torch.stack(images)).to(device)).float(), dim=-1).cpu()
        values, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        for path, vals, idxs in zip(batch_files, values.tolist(), indices.tolist(), strict=True):
            top = [
                (i, names[i] if names is not None and i < len(names) else None, p)
                for i, p in zip(idxs, vals, strict=True)
            ]
            predictions.append(Prediction(str(path), top))
    return predictions
