"""Tasks as the engine runs them: a model's declared inputs get their columns of the batch (the padding mask of a
part-segmentation batch reaches the model), bad batches in the loop fail with a message saying what was expected,
and a run's saved config records the attention path and the MLP memory mode it trained with."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)
from torch.utils.data import Dataset, TensorDataset

from bixt.engine.config import ConfigError, load_config, parse_config
from bixt.engine.epochs import KERNELS_NAME
from bixt.engine.run import fit
from bixt.engine.run_dir import RUN_CONFIG_NAME
from bixt.models.points import PartSegmenter

TINY_PARTSEG = (
    "{embed_dim: 16, depth: 1, num_heads: 2, num_latents: 4, num_classes: 4, num_categories: 2, num_points: 64}"
)


class RaggedParts(Dataset):
    """Point clouds of 5 to 12 points, each with per-point part labels (0-3) and a category (0-1)."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            points = torch.rand(5 + i % 8, 3, generator=g) * 2 - 1
            labels = (points[:, 0] > 0).long() + 2 * (i % 2)
            self.items.append((points, labels, i % 2))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_a_padded_part_segmentation_batch_gives_the_model_its_mask(tmp_path, monkeypatch) -> None:
    masks = []
    real_forward = PartSegmenter.forward

    @functools.wraps(real_forward)
    def recording_forward(self, points, category=None, mask=None):
        if points.shape[1] <= 12:  # the data's clouds, not the model's own 64-point example input (cost counts)
            masks.append(mask)
        return real_forward(self, points, category, mask)

    monkeypatch.setattr(PartSegmenter, "forward", recording_forward)
    config = parse_config(
        [
            "--model.name", "bixt_points_partseg", "--model.options", TINY_PARTSEG,
            "--task", "part_segmentation", "--data.collate", "padded", "--batch_size", "4",
            "--schedule.epochs", "1", "--schedule.warmup_epochs", "0", "--progress", "false", "--threads", "1",
            "--output_dir", str(tmp_path),
        ]
    )  # fmt: skip
    data = RaggedParts()
    result = fit(config, train_set=data, eval_set=data)
    assert len(masks) >= 4 + 4  # the 4 training steps and the 4 evaluation batches
    assert all(mask is not None for mask in masks), "a padded batch reached the model without its mask"
    assert all(mask.dtype == torch.bool and (~mask).any() for mask in masks)  # each batch of ragged clouds has padding
    assert "instance_miou" in result.metrics


def test_a_nan_in_an_evaluation_batch_is_named_not_averaged(tmp_path) -> None:
    data = tiny_images()
    images, labels = data.tensors
    broken = images.clone()
    broken[20, 0, 3, 3] = float("nan")  # in the third evaluation batch: the check before training sees two items
    with pytest.raises(ValueError, match=r"evaluation batch 3 holds NaN or infinite values in input 'images'.*"
                       r"expected finite numbers") as error:  # fmt: skip
        fit(tiny_config(str(tmp_path)), train_set=data, eval_set=TensorDataset(broken, labels))
    assert "shape (8, 1, 16, 16)" in str(error.value)


def test_a_label_beyond_the_classes_after_the_first_batch_is_named(tmp_path) -> None:
    data = tiny_images()
    images, labels = data.tensors
    wrong = labels.clone()
    wrong[-1] = 7  # the model has 3 classes; the evaluation split checked before training has none of this
    with pytest.raises(
        ValueError, match=r"training batch \d+ of epoch 1 has label 7, but the model has 3 classes \(labels 0\.\.2\)"
    ):
        fit(tiny_config(str(tmp_path)), train_set=TensorDataset(images, wrong), eval_set=data)


def test_the_saved_config_records_the_attention_path_the_run_trained_with(tmp_path, monkeypatch) -> None:
    data = tiny_images()
    monkeypatch.setenv("BIXT_ATTN", "fused")
    run_dir = fit(tiny_config(str(tmp_path), "--run_name", "r"), train_set=data, eval_set=data).run_dir
    assert load_config(run_dir / RUN_CONFIG_NAME).attention == "fused"
    kernels = json.loads((run_dir / KERNELS_NAME).read_text())
    assert kernels["attention_auto"] == {}  # nothing ran under auto: the recorded path is the one every call took
    with pytest.raises(ConfigError, match=r"attention must be one of 'auto', 'explicit'.*got 'flash'"):
        fit(tiny_config(str(tmp_path), "--attention", "flash"), train_set=data, eval_set=data)


def test_the_saved_config_records_the_mlp_memory_mode_the_run_trained_with(tmp_path, monkeypatch) -> None:
    data = tiny_images()
    monkeypatch.setenv("BIXT_MLP_MEMORY", "low")
    run_dir = fit(tiny_config(str(tmp_path), "--run_name", "r"), train_set=data, eval_set=data).run_dir
    assert load_config(run_dir / RUN_CONFIG_NAME).mlp_memory == "low"
    monkeypatch.delenv("BIXT_MLP_MEMORY")
    run_dir = fit(tiny_config(str(tmp_path), "--run_name", "default"), train_set=data, eval_set=data).run_dir
    assert load_config(run_dir / RUN_CONFIG_NAME).mlp_memory == "fast"
    with pytest.raises(ConfigError, match=r"mlp_memory must be one of 'fast', 'low' \(or unset\), got 'tiny'"):
        fit(tiny_config(str(tmp_path), "--mlp_memory", "tiny"), train_set=data, eval_set=data)
