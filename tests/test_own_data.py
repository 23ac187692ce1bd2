"""The README's "Train on your own data": each path from files a user has, through `bixt train` with the recipe to
copy (configs/own-*.yaml) to `bixt eval`, on small fixtures written here; and the point-folder loader itself.

The commands are the README's, plus overrides that shrink the model and the run to seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import restore_threads  # noqa: F401 (autouse fixture)

from bixt.cli import main as cli_main
from bixt.data import DataFormatError, load_dataset

CONFIGS = Path(__file__).parent.parent / "configs"
SHORT_RUN = ["--schedule.epochs", "1", "--schedule.warmup_epochs", "0.5", "--batch_size", "4", "--threads", "1",
             "--progress", "false", "--model.options.embed_dim", "32", "--model.options.depth", "2"]  # fmt: skip


def _image_folder(root: Path) -> Path:
    """3 classes of 40x40 PNGs (a different dominant colour per class), 8 for training and 4 for validation each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for label, name in enumerate(("red", "green", "blue")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 80, size=(40, 40, 3))
                pixels[..., label] += 160
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    return root


def _point_folder(root: Path) -> Path:
    """2 classes of clouds (a sphere, a flat disc), 8 train / 4 test each, of 50 to 150 points (x, y, z)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 4)):
        for name, flatten in (("sphere", 1.0), ("disc", 0.05)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                cloud = rng.normal(size=(int(rng.integers(50, 150)), 3))
                cloud /= np.linalg.norm(cloud, axis=1, keepdims=True)
                cloud[:, 2] *= flatten
                np.save(root / split / name / f"{i}.npy", cloud.astype(np.float32))
    return root


def _text_files(root: Path) -> Path:
    """train.tsv / test.tsv: label<TAB>text, 2 classes, 16 / 8 lines."""
    root.mkdir(parents=True)
    words = {0: ["dull", "slow", "grey"], 1: ["bright", "quick", "gold"]}
    for split, count in (("train", 16), ("test", 8)):
        lines = [f"{i % 2}\t{' '.join(words[i % 2][j % 3] for j in range(i, i + 5))}" for i in range(count)]
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _modelnet_hdf5(root: Path) -> Path:
    """ModelNet40's layout: ply_data_{train,test}0.h5 with data (N, P, 3) and label (N, 1)."""
    h5py = pytest.importorskip("h5py")
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f.create_dataset("data", data=rng.normal(size=(n, 128, 3)).astype(np.float32))
            f.create_dataset("label", data=(np.arange(n) % 2).astype(np.uint8)[:, None])
    return root


POINTS_SMALL = ["--model.options.num_points", "64", "--model.options.num_groups", "8", "--model.options.group_size",
                "8", "--model.options.num_latents", "8", "--data.options.num_points", "64"]  # fmt: skip
CASES = {
    "images": (
        "own-images.yaml",
        _image_folder,
        ["--model.options.num_classes", "3", "--model.options.num_latents", "8"],
    ),
    "point-folder": ("own-points.yaml", _point_folder, ["--model.options.num_classes", "2", *POINTS_SMALL]),
    "modelnet-hdf5": ("own-points.yaml", _modelnet_hdf5, ["--data.name", "modelnet40", *POINTS_SMALL]),
    "text": ("own-text.yaml", _text_files, ["--data.options.max_length", "64", "--model.options.num_latents", "8"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_own_data_trains_and_evaluates_from_the_recipe(case: str, tmp_path: Path, capsys) -> None:
    recipe, write_fixture, overrides = CASES[case]
    root = write_fixture(tmp_path / "mine")
    runs = tmp_path / "runs"
    argv = ["train", "-c", str(CONFIGS / recipe), "--data.options.root", str(root), *overrides, *SHORT_RUN,
            "--output_dir", str(runs), "--run_name", "mine"]  # fmt: skip
    assert cli_main(argv) == 0, capsys.readouterr().err
    trained = capsys.readouterr().out
    assert "final evaluation: top1" in trained
    config = (runs / "mine" / "config.yaml").read_text()
    assert str(root) in config  # the run reads the user's files, recorded for `bixt eval`

    assert cli_main(["eval", str(runs / "mine")]) == 0, capsys.readouterr().err
    report = capsys.readouterr().out
    top1 = float(report.split("top1")[1].split()[0])
    logged = [json.loads(line) for line in (runs / "mine" / "metrics.jsonl").read_text().splitlines()]
    assert top1 == pytest.approx(logged[-1]["top1"], abs=1e-4)  # eval reproduces the logged evaluation


def test_point_folder_items_stats_and_errors(tmp_path: Path) -> None:
    root = _point_folder(tmp_path / "clouds")
    train = load_dataset("point-folder", split="train", root=root, num_points=100)
    assert len(train) == 16 and train.classes == ("disc", "sphere")
    points, label = train[0]
    assert points.shape == (100, 3) and points.dtype == torch.float32 and label == train.samples[0][1]
    assert {label for _, label in train.samples[:8]} == {0, 1}  # not class by class: a limit keeps both classes
    assert torch.equal(points, train[0][0])  # the same points every time (seeded by the item)
    source = np.load(train.samples[0][0])
    if source.shape[0] >= 100:  # drawn without replacement: distinct points of the file
        assert torch.unique(points, dim=0).shape[0] == 100
    assert np.isin(points.numpy(), source).all()

    (root / "train" / "disc" / "bad.npy").write_bytes(b"not numpy")
    np.save(root / "train" / "sphere" / "wide.npy", np.zeros((10, 4), np.float32))
    np.save(root / "train" / "sphere" / "flat.npy", np.zeros(10, np.float32))
    data = load_dataset("point-folder", split="train", root=root)
    by_name = {path.name: i for i, (path, _) in enumerate(data.samples)}
    with pytest.raises(DataFormatError, match=r"bad.npy: not a readable .npy array"):
        data[by_name["bad.npy"]]
    with pytest.raises(DataFormatError, match=r"wide.npy: 4 channels per point, but 3 in the first cloud"):
        data[by_name["wide.npy"]]
    with pytest.raises(DataFormatError, match=r"flat.npy: expected a numeric array \(points, channels >= 2\)"):
        data[by_name["flat.npy"]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("point-folder", split="val", root=root)
