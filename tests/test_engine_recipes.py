"""A 2-step smoke run of every recipe in configs/ on a few items of its real data (CPU, tiny model widths).

The fetched sets come from `bixt data fetch` (make test fetches them first); a recipe whose set is absent is skipped.
The ImageNet recipe runs on a small image folder written here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from engine_helpers import restore_threads  # noqa: F401 (autouse fixture)

from bixt.data import dataset_info, is_fetched
from bixt.engine.config import load_config
from bixt.engine.run import fit
from bixt.engine.tasks import PRIMARY_METRIC

CONFIGS = Path(__file__).parent.parent / "configs"
# The own-data recipes read a user's files: tests/test_own_data.py runs each from fixtures, through the CLI.
RECIPES = sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("own-"))
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
# Fewer generated / paired items than the recipes' full sizes, so the smoke runs build their data in seconds.
SMALL_DATA = {
    "listops": {"num_examples": 16},
    "mnist-canvas": {"num_examples": 16},
    "mnist-scenes": {"num_examples": 16},
    "austen": {"num_pairs": 16, "max_length": 512},
    "imdb": {"max_length": 512},
}


def _image_folder(root: Path) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                pixels = (torch.rand(40, 40, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


def _smoke_config(recipe: str, tmp_path: Path):
    config = load_config(CONFIGS / recipe)
    options = {**config.model.options, **TINY}
    if "num_latents" in config.model.options or config.model.name.startswith("bixt"):
        options["num_latents"] = 8
    data_options = {**config.data.options, **SMALL_DATA.get(config.data.name, {})}
    augment = config.augment
    if config.data.name == "image-folder":
        data_options.update(root=str(_image_folder(tmp_path / "imagenet")), image_size=40)
        options.update(num_classes=2, img_size=32)
        augment = dataclasses.replace(augment, image_size=32)
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, options=options),
        data=dataclasses.replace(config.data, options=data_options, train_limit=8, eval_limit=4, num_workers=0),
        augment=augment,
        schedule=dataclasses.replace(config.schedule, epochs=1, warmup_epochs=0.5),
        batch_size=4,
        eval_batch_size=4,
        precision="fp32",
        compile=False,
        threads=1,
        progress=False,
        log_every_steps=1,
        output_dir=str(tmp_path / "runs"),
        run_name="smoke",
    )


@pytest.mark.network_data
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_two_step_smoke_run(recipe, tmp_path):
    config = _smoke_config(recipe, tmp_path)
    missing = [n for n in (*dataset_info(config.data.name).needs,) if not is_fetched(n)]
    if missing:
        pytest.skip(f"{missing} not fetched (run `bixt data fetch {' '.join(missing)}`)")
    result = fit(config)
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in train)
    primary = PRIMARY_METRIC[config.task]
    assert 0.0 <= result.metrics[primary] <= 100.0 and math.isfinite(result.metrics["loss"])
    assert (result.last_checkpoint / "model.safetensors").is_file()
