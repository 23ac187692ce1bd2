"""Batched augmentation on the model's device: images through kornia, point clouds in a few tensor operations.

Image training pipeline of SPEC §3.1 (DeiT III): RandomResizedCrop (bicubic) -> horizontal flip -> 3-Augment (per
sample, one of grayscale / solarize / Gaussian blur with sigma in [0.1, 2]) -> ColorJitter(0.3, 0.3, 0.3) ->
normalise; then :class:`MixupCutmix` (mixup alpha 0.8 or CutMix alpha 1.0, switched with probability 0.5, one
mixing coefficient per batch) turning integer labels into soft targets. All modules take float images
(b, c, h, w) in [0, 1] on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_KORNIA_HINT = "image augmentation needs kornia: pip install 'bixt[data]'"


def _kornia_augmentation():
    try:
        import kornia.augmentation as K
    except ImportError as exc:
        raise ImportError(_KORNIA_HINT) from exc
    return K


class PerSampleChoice(nn.Module):
    """Apply exactly one of ``ops`` to each sample, chosen uniformly and independently per sample.

    (kornia's ``random_apply`` picks one op for the whole batch; 3-Augment picks per image.)
    """

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (b, c, h, w) -> (b, c, h, w)."""
        choice = torch.randint(len(self.ops), (images.shape[0],), device=images.device)
        out = images.clone()
        for i, op in enumerate(self.ops):
            selected = choice == i
            if selected.any():
                out[selected] = op(images[selected]).to(out.dtype)
        return out


def three_augment(channels: int, image_size: int) -> PerSampleChoice:
    """DeiT III's 3-Augment: grayscale, solarize (threshold 0.5) or Gaussian blur (sigma in [0.1, 2])."""
    K = _kornia_augmentation()
    # A blur kernel of about a tenth of the image (odd, at least 3) covers sigma up to 2 at ImageNet size
    # without smearing 28-pixel digits into nothing.
    kernel = max(3, (image_size // 10) | 1)
    ops: list[nn.Module] = [
        K.RandomSolarize(thresholds=0.0, additions=0.0, p=1.0),
        K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=1.0),
    ]
    if channels == 3:
        ops.insert(0, K.RandomGrayscale(p=1.0))
    else:
        ops.insert(0, nn.Identity())  # a single-channel image is grayscale already
    return PerSampleChoice(ops)


def train_image_transform(
    image_size: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: bool = True,
    use_three_augment: bool = True,
    color_jitter: float = 0.3,
) -> nn.Module:
    """The SPEC §3.1 training pipeline for images with ``len(mean)`` channels: (b, c, h, w) -> (b, c, S, S)."""
    K = _kornia_augmentation()
    if len(mean) != len(std):
        raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
    stages: list[nn.Module] = [
        K.RandomResizedCrop((image_size, image_size), scale=scale, ratio=(3 / 4, 4 / 3), resample="bicubic")
    ]
    if hflip:
        stages.append(K.RandomHorizontalFlip(p=0.5))
    if use_three_augment:
        stages.append(three_augment(len(mean), image_size))
    if color_jitter > 0:
        stages.append(K.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0, p=1.0))
    stages.append(K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std)))
    return nn.Sequential(*stages)


def eval_image_transform(image_size: int, *, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Resize (bicubic) to ``image_size`` and normalise: (b, c, h, w) -> (b, c, S, S)."""
    K = _kornia_augmentation()
    return nn.Sequential(
        K.Resize((image_size, image_size), resample="bicubic"),
        K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std)),
    )


class MixupCutmix(nn.Module):
    """Mixup or CutMix (kornia) on a batch, returning soft targets (b, num_classes).

    One of the two is chosen per batch (CutMix with ``switch_prob``), with one coefficient for the whole batch
    drawn from Beta(alpha, alpha) (timm's mode 'batch'); kornia draws the partners and the CutMix box.
    ``label_smoothing`` spreads that much mass uniformly before mixing.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        prob: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("at least one of mixup_alpha and cutmix_alpha must be positive")
        K = _kornia_augmentation()
        self.num_classes, self.prob, self.label_smoothing = num_classes, prob, label_smoothing
        self.mixup_alpha, self.cutmix_alpha, self.switch_prob = mixup_alpha, cutmix_alpha, switch_prob
        self.mixup = K.RandomMixUpV2(data_keys=["input", "class"])
        # use_correct_lambda: the reported coefficient is the area kept from the original image (the CutMix paper).
        self.cutmix = K.RandomCutMixV2(
            beta=max(cutmix_alpha, 1e-6), use_correct_lambda=True, data_keys=["input", "class"]
        )

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """labels (b,) -> smoothed one-hot (b, num_classes)."""
        off = self.label_smoothing / self.num_classes
        return torch.full((labels.shape[0], self.num_classes), off, device=labels.device).scatter_(
            1, labels[:, None], 1.0 - self.label_smoothing + off
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (b, c, h, w), labels int (b,) -> (mixed images (b, c, h, w), soft targets (b, num_classes))."""
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
            )
        if not self.training or torch.rand(()) >= self.prob:
            return images, self.one_hot(labels)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or torch.rand(()) < self.switch_prob)
        if use_cutmix:
            images, mixed = self.cutmix(images, labels)
            mixed = mixed[-1]  # (num_mix=1, b, 3) -> (b, 3): [label_a, label_b, weight of label_a]
            weight_a = mixed[:, 2]
        else:
            params = self.mixup.forward_parameters(images.shape)
            lam = torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample().item()
            params["mixup_lambdas"] = torch.full_like(params["mixup_lambdas"], lam)
            images, mixed = self.mixup(images, labels, params=params)  # [label_a, label_b, weight of label_b]
            weight_a = 1.0 - mixed[:, 2]
        a, b = mixed[:, 0].long(), mixed[:, 1].long()
        weight_a = weight_a[:, None].to(images.dtype)
        return images, weight_a * self.one_hot(a) + (1.0 - weight_a) * self.one_hot(b)


class RandomFlipShift(nn.Module):
    """Per-sample random horizontal flip (probability 0.5) and translation by up to ``shift`` pixels, zero-filled.

    A light augmentation for small images that keeps their size and pixel statistics, unlike the DeiT-III pipeline.
    Plain tensor indexing, so no kornia is needed. On the main job's 12 epochs it did not help (README "Main job":
    it slowed the fit more than it countered the overfitting that 15 plain epochs show).
    """

    def __init__(self, *, flip: bool, shift: int) -> None:
        super().__init__()
        if shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {shift}")
        self.flip, self.shift = flip, shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (b, c, h, w) -> (b, c, h, w)."""
        if images.ndim != 4:
            raise ValueError(f"RandomFlipShift takes image batches (b, c, h, w), got shape {tuple(images.shape)}")
        b, _, h, w = images.shape
        device = images.device
        rows = torch.arange(h, device=device).expand(b, h)
        cols = torch.arange(w, device=device).expand(b, w)
        if self.flip:
            flipped = torch.rand(b, 1, device=device) < 0.5
            cols = torch.where(flipped, w - 1 - cols, cols)
        if self.shift:
            s = self.shift
            images = torch.nn.functional.pad(images, (s, s, s, s))
            rows = rows + torch.randint(0, 2 * s + 1, (b, 1), device=device)
            cols = cols + torch.randint(0, 2 * s + 1, (b, 1), device=device)
        batch = torch.arange(b, device=device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=device)[None, :, None, None]
        return images[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


class RandomErasing(nn.Module):
    """Per-sample random erasing (Zhong et al., 2017): with probability ``p``, one rectangle is set to zero.

    The rectangle covers a fraction of the image drawn uniformly from ``area`` with an aspect ratio drawn
    log-uniformly from ``[1 / max_aspect, max_aspect]``, placed uniformly where it fits. Zero is the mean grey of
    normalised images. The defaults are the paper's (p 0.5, area 0.02-0.4, aspect 0.3-3.3), which it reports to
    lower the test error on Fashion-MNIST. One rectangle per sample, drawn in one batch of tensor operations.
    """

    def __init__(self, *, p: float, area: tuple[float, float] = (0.02, 0.4), max_aspect: float = 1 / 0.3) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"erasing probability must be in [0, 1], got {p}")
        if not 0 < area[0] <= area[1] <= 1:
            raise ValueError(f"erased area must be fractions 0 < low <= high <= 1, got {area}")
        if max_aspect < 1:
            raise ValueError(f"max_aspect must be >= 1, got {max_aspect}")
        self.p, self.area, self.max_aspect = p, area, max_aspect

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (b, c, h, w) -> (b, c, h, w)."""
        if images.ndim != 4:
            raise ValueError(f"RandomErasing takes image batches (b, c, h, w), got shape {tuple(images.shape)}")
        b, _, h, w = images.shape
        device = images.device
        area = torch.empty(b, device=device).uniform_(*self.area) * (h * w)
        log_aspect = torch.empty(b, device=device).uniform_(-math.log(self.max_aspect), math.log(self.max_aspect))
        aspect = log_aspect.exp()
        # height / width = aspect, height * width = area; clipped to the image so that it always fits
        heights = (area * aspect).sqrt().round().clamp(1, h).long()
        widths = (area / aspect).sqrt().round().clamp(1, w).long()
        tops = (torch.rand(b, device=device) * (h - heights + 1)).long()
        lefts = (torch.rand(b, device=device) * (w - widths + 1)).long()
        rows = torch.arange(h, device=device)[None, :]
        cols = torch.arange(w, device=device)[None, :]
        in_rows = (rows >= tops[:, None]) & (rows < (tops + heights)[:, None])
        in_cols = (cols >= lefts[:, None]) & (cols < (lefts + widths)[:, None])
        erased = in_rows[:, :, None] & in_cols[:, None, :] & (torch.rand(b, 1, 1, device=device) < self.p)
        return images.masked_fill(erased[:, None], 0.0)


class PointCloudAugment(nn.Module):
    """Random anisotropic scale, shift, rotation about the up axis, and clipped jitter for (b, n, c) point clouds.

    Acts on the first ``num_coords`` channels (3 for xyz, 2 for image point sets, whose rotation is in the plane);
    further channels (intensity, normals) pass through. Defaults follow PointNet++.
    """

    def __init__(
        self,
        *,
        num_coords: int = 3,
        scale: tuple[float, float] = (2 / 3, 3 / 2),
        shift: float = 0.2,
        rotate: bool = True,
        max_angle: float = math.pi,
        up_axis: int = 1,
        jitter_sigma: float = 0.01,
        jitter_clip: float = 0.05,
    ) -> None:
        super().__init__()
        if num_coords not in (2, 3):
            raise ValueError(f"num_coords must be 2 or 3, got {num_coords}")
        if not 0 <= up_axis < 3:
            raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis}")
        self.num_coords, self.scale, self.shift, self.rotate = num_coords, scale, shift, rotate
        self.max_angle, self.up_axis = max_angle, up_axis
        self.jitter_sigma, self.jitter_clip = jitter_sigma, jitter_clip

    def _rotation(self, b: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        angle = (torch.rand(b, device=device, dtype=dtype) * 2 - 1) * self.max_angle
        cos, sin = angle.cos(), angle.sin()
        if self.num_coords == 2:
            return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (b, 2, 2)
        rot = torch.eye(3, device=device, dtype=dtype).repeat(b, 1, 1)
        i, j = [k for k in range(3) if k != self.up_axis]  # the plane perpendicular to the up axis
        rot[:, i, i], rot[:, i, j], rot[:, j, i], rot[:, j, j] = cos, -sin, sin, cos
        return rot

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points (b, n, c) with c >= num_coords -> (b, n, c)."""
        if points.ndim != 3 or points.shape[-1] < self.num_coords:
            raise ValueError(f"points must be (b, n, c >= {self.num_coords}), got {tuple(points.shape)}")
        b, k = points.shape[0], self.num_coords
        coords = points[..., :k]
        low, high = self.scale
        coords = coords * (low + (high - low) * torch.rand(b, 1, k, device=points.device, dtype=points.dtype))
        if self.rotate:
            coords = coords @ self._rotation(b, points.device, points.dtype).transpose(1, 2)
        coords = coords + (torch.rand(b, 1, k, device=points.device, dtype=points.dtype) * 2 - 1) * self.shift
        if self.jitter_sigma > 0:
            noise = torch.randn_like(coords) * self.jitter_sigma
            coords = coords + noise.clamp(-self.jitter_clip, self.jitter_clip)
        return torch.cat([coords, points[..., k:]], dim=-1)
