"""`bixt predict`: a run's own preprocessing and class names, the authors' weights with ImageNet's, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from official_reference import OfficialSpec, official_state_dict
from PIL import Image

import bixt
from bixt.cli import main as cli
from bixt.data import is_fetched
from bixt.data.images import FASHION_MNIST_CLASSES
from bixt.engine.builders import build_augment, load_split
from bixt.engine.checkpoint import resolve_checkpoint
from bixt.engine.config import load_config
from bixt.engine.run_dir import RUN_CONFIG_NAME
from bixt.engine.tasks import Batch
from bixt.predict import imagenet_class_names

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not is_fetched("fashion-mnist"):
        pytest.skip("fashion-mnist is not fetched (run `bixt data fetch fashion-mnist`)")
    out = tmp_path_factory.mktemp("runs")
    argv = [
        "-c", str(CONFIGS / "fashion-mnist.yaml"),
        "--model.options", "{img_size: 32, in_chans: 1, num_classes: 10, embed_dim: 16, depth: 1, num_heads: 2}",
        "--data.train_limit", "64", "--data.eval_limit", "8", "--batch_size", "16", "--schedule.epochs", "1",
        "--threads", "1", "--progress", "false", "--output_dir", str(out), "--run_name", "fm",
    ]  # fmt: skip
    assert cli(["train", *argv]) == 0
    return out / "fm"


@pytest.mark.network_data
def test_a_run_predicts_with_its_own_preprocessing_and_class_names(fashion_run: Path, tmp_path: Path, capsys) -> None:
    config = load_config(fashion_run / RUN_CONFIG_NAME)
    test_set = load_split(config, "test", 3)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        pixels = (test_set[i][0][0] * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"item{i}.png")
    (folder / "broken.png").write_bytes(b"not an image at all")

    capsys.readouterr()
    assert cli(["predict", str(fashion_run), str(folder), "--jsonl", "--top-k", "3"]) == 1  # 1: a file was skipped
    captured = capsys.readouterr()
    assert "broken.png: not a readable image" in captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [Path(r["file"]).name for r in records] == ["item0.png", "item1.png", "item2.png"]

    # the same images through the engine's evaluation path give the same probabilities
    model = bixt.from_pretrained(resolve_checkpoint(fashion_run)).eval()
    augment = build_augment(config, train=False, num_classes=10, device=torch.device("cpu"))
    images = torch.stack([test_set[i][0] for i in range(3)])
    with torch.no_grad():
        probs = model(augment(Batch((images,), torch.zeros(3, dtype=torch.long))).inputs[0]).softmax(-1)
    for record, row in zip(records, probs, strict=True):
        top = record["top"]
        assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
        for entry in top:
            assert entry["name"] == FASHION_MNIST_CLASSES[entry["index"]]
            assert entry["probability"] == pytest.approx(row[entry["index"]].item(), abs=1e-5)


def test_the_authors_weights_predict_with_imagenet_preprocessing_and_names(tmp_path: Path, capsys) -> None:
    names = imagenet_class_names()
    if names is None:
        pytest.skip("timm (which ships the ImageNet class names) is not installed")
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    spec = OfficialSpec(embed_dim=192, num_heads=6, depth=12, num_latents=64, num_classes=1000, pos_buffer_grid=14)
    weights = tmp_path / "model_best.pth.tar"
    checkpoint = {"arch": "bixt_ti_l64_p16", "state_dict": official_state_dict(spec), "args": argparse.Namespace()}
    torch.save(checkpoint, weights)
    rng = np.random.default_rng(0)
    image = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)).save(image)

    capsys.readouterr()
    assert cli(["predict", "bixt_ti_l64_p16", str(image), "--weights", str(weights), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "ImageNet evaluation: resize 256, crop 224" in out
    line = out.splitlines()[1]
    assert line.startswith(f"{image}: ") and any(f"{name} " in line for name in names)


def test_bad_sources_and_inputs_fail_clearly(tmp_path: Path, capsys) -> None:
    assert cli(["predict", "bixt_ti_l64_p16", str(tmp_path)]) == 2
    assert "random weights" in capsys.readouterr().err
    assert cli(["predict", "no_such_model", str(tmp_path)]) == 2
    assert "neither a checkpoint directory" in capsys.readouterr().err
    model = bixt.create_model("bixt_ti_l64_p16", img_size=32, embed_dim=64, num_heads=2, depth=1, num_classes=3)
    checkpoint = model.save_pretrained(tmp_path / "ckpt")
    assert cli(["predict", str(checkpoint), str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["predict", str(checkpoint), str(tmp_path / "empty")]) == 2
    assert "no image files" in capsys.readouterr().err
