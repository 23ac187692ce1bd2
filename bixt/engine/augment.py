"""Batch-level input processing on the model's device, built from the recipe's ``augment`` section.

The transforms themselves come from ``bixt.data.transforms`` (kornia for images); this module only decides which
apply to a task and in which order: resizing, normalisation or the DeiT-III pipeline, zero padding, random flip /
shift, random erasing, then mixup / cutmix for classification, point-cloud augmentation for point inputs. Training
and evaluation get different instances.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bixt.data import transforms
from bixt.engine.config import AugmentSection
from bixt.engine.tasks import TASKS, Batch, Task


class BatchAugment(nn.Module):
    """Batch -> Batch on the device. Acts on the first model input (images or points); targets change under mixup."""

    def __init__(
        self,
        config: AugmentSection,
        *,
        task: Task,
        train: bool,
        num_classes: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        config.check()
        self.image: nn.Module | None = None
        if config.image == "normalize":
            if mean is None or std is None:
                raise ValueError("augment.image=normalize needs per-channel mean and std")
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        elif config.image == "deit3":
            if config.image_size is None:
                raise ValueError("augment.image=deit3 needs augment.image_size")
            kwargs = {"mean": list(mean or ()), "std": list(std or ())}
            self.image = (
                transforms.train_image_transform(config.image_size, **kwargs)
                if train
                else transforms.eval_image_transform(config.image_size, **kwargs)
            )
        self.normalize = config.image == "normalize"
        self.resize = config.resize
        self.pad = config.pad
        self.pad_before_normalize = config.pad_before_normalize
        use_mixup = train and (config.mixup_alpha > 0 or config.cutmix_alpha > 0)
        if use_mixup and not task.mixes_batches:
            mixing = ", ".join(name for name, other in TASKS.items() if other.mixes_batches)
            raise ValueError(f"mixup / cutmix apply to {mixing} only, not to task {task.name!r}")
        self.mixup = (
            transforms.MixupCutmix(
                num_classes,
                mixup_alpha=config.mixup_alpha,
                cutmix_alpha=config.cutmix_alpha,
                label_smoothing=config.label_smoothing,
            )
            if use_mixup
            else None
        )
        self.flip_shift = (
            transforms.RandomFlipShift(flip=config.flip, shift=config.shift)
            if train and (config.flip or config.shift)
            else None
        )
        self.erase = transforms.RandomErasing(p=config.erase) if train and config.erase else None
        self.points = transforms.PointCloudAugment(num_coords=config.point_coords) if train and config.points else None

    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"augment.pad applies to image batches (b, c, h, w), got shape {tuple(images.shape)}")
        return F.pad(images, (self.pad,) * 4)

    def forward(self, batch: Batch) -> Batch:
        first, *rest = batch.inputs
        target = batch.target
        if self.resize is not None:
            if first.ndim != 4:
                raise ValueError(
                    f"augment.resize applies to image batches (b, c, h, w), got shape {tuple(first.shape)}"
                )
            first = F.interpolate(first.float(), size=(self.resize,) * 2, mode="bilinear", antialias=True)
        if self.pad_before_normalize:
            first = self._pad(first)
        if self.normalize:
            first = (first - self.mean) / self.std
        if self.image is not None:
            first = self.image(first)
        if self.pad and not self.pad_before_normalize:
            first = self._pad(first)
        if self.flip_shift is not None:
            first = self.flip_shift(first)
        if self.erase is not None:
            first = self.erase(first)
        if self.mixup is not None:
            first, target = self.mixup(first, target)
        if self.points is not None:
            first = self.points(first)
        return Batch((first, *rest), target)
