"""Tiny synthetic data and configs shared by the engine tests (also imported by the scripts they launch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from bixt.engine.config import RunConfig, parse_config

TINY_BIXT = "{img_size: 16, in_chans: 1, num_classes: 3, embed_dim: 16, depth: 2, num_heads: 2, num_latents: 4}"


def tiny_images(n: int = 48, seed: int = 0) -> TensorDataset:
    """n images (1, 16, 16) whose class (0-2) is which third of the image is brightest: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.rand(n, 1, 16, 16, generator=g) * 0.2
    for i, label in enumerate(labels.tolist()):
        images[i, :, :, label * 5 : label * 5 + 6] += 0.8
    return TensorDataset(images, labels)


# A 1-layer BiXT on 32 generated ListOps sequences: 4 steps of batch 8 per epoch, through the real CLI and registry.
_TINY_LISTOPS_RECIPE = """
model:
  name: bixt_lra_listops
  options: {{embed_dim: 16, depth: 1, num_heads: 2, num_latents: 4}}
data:
  name: listops
  options: {{num_examples: 32}}
  eval_split: val
  cache_dir: {cache}
  collate: padded
batch_size: 8
schedule: {{epochs: {epochs}, warmup_epochs: 0.5}}
checkpoint_every_steps: 1
keep_checkpoints: 99
progress: false
threads: 1
log_every_steps: 1
"""


def write_tiny_listops_recipe(directory: Path, epochs: int = 2) -> Path:
    """``directory/tiny-listops.yaml``, its generated data cached in ``directory/cache``."""
    path = directory / "tiny-listops.yaml"
    path.write_text(_TINY_LISTOPS_RECIPE.format(cache=directory / "cache", epochs=epochs))
    return path


def tiny_config(output_dir: str, *extra: str) -> RunConfig:
    """A 2-epoch run of a 2-layer BiXT on tiny_images: 6 steps of batch 8 per epoch with 48 items."""
    return parse_config(
        [
            "--model.name", "bixt_ti_l64_p16s4",
            "--model.options", TINY_BIXT,
            "--batch_size", "8",
            "--schedule.epochs", "2",
            "--schedule.warmup_epochs", "0.5",
            "--optim.lr", "3e-3",
            "--log_every_steps", "1",
            "--progress", "false",
            "--threads", "1",  # tiny matrices: one thread is fastest, and the same count keeps resumes bit-exact
            "--output_dir", output_dir,
            *extra,
        ]
    )  # fmt: skip


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    """Runs set torch's thread count (config.threads); put it back for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
