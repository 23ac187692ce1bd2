"""Batched augmentation (kornia), mixup / CutMix soft targets, point-cloud augmentation, collate, statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bixt.data.collate import IGNORE_INDEX, collate_padded, pad_sequences
from bixt.data.images import MNIST_CLASSES, ImageTensorDataset
from bixt.data.stats import compute_image_stats
from bixt.data.transforms import (
    MixupCutmix,
    PerSampleChoice,
    PointCloudAugment,
    RandomErasing,
    RandomFlipShift,
    eval_image_transform,
    train_image_transform,
)

pytest.importorskip("kornia")


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_soft_targets_match_pixel_content(mode):
    """Each image is constant at its label's value, so the mixed pixels reveal how much of each label it holds."""
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    images = (labels.float() / 10).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).contiguous()
    mix = MixupCutmix(10, mixup_alpha=0.8 if mode == "mixup" else 0.0, cutmix_alpha=1.0 if mode == "cutmix" else 0.0)
    for _ in range(5):
        out, soft = mix(images, labels)
        assert soft.shape == (6, 10) and torch.allclose(soft.sum(1), torch.ones(6))
        expected = (soft * torch.arange(10).float() / 10).sum(1)  # the value a pixel-average should have
        assert torch.allclose(out.mean((1, 2, 3)), expected, atol=1e-5)
        assert (soft > 0).sum(1).max() <= 2


def test_mixup_eval_mode_and_label_smoothing():
    mix = MixupCutmix(4, label_smoothing=0.2).eval()
    images = torch.rand(3, 1, 8, 8)
    out, soft = mix(images, torch.tensor([0, 3, 1]))
    assert torch.equal(out, images)
    assert torch.allclose(soft[1], torch.tensor([0.05, 0.05, 0.05, 0.85]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        mix(images, torch.tensor([0, 4, 1]))


def test_per_sample_choice_applies_exactly_one_op():
    class Add(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x):
            return x + self.value

    torch.manual_seed(1)
    out = PerSampleChoice([Add(1.0), Add(10.0), Add(100.0)])(torch.zeros(64, 1, 2, 2))
    values = out[:, 0, 0, 0]
    assert set(values.tolist()) == {1.0, 10.0, 100.0}  # each op chosen for some sample, never summed
    assert torch.equal(out, values.view(-1, 1, 1, 1).expand_as(out))


@pytest.mark.parametrize("channels", [1, 3])
def test_train_and_eval_pipelines(channels):
    torch.manual_seed(0)
    mean, std = [0.5] * channels, [0.25] * channels
    x = torch.rand(5, channels, 28, 28)
    out = train_image_transform(24, mean=mean, std=std)(x)
    assert out.shape == (5, channels, 24, 24) and torch.isfinite(out).all()
    assert not torch.allclose(out, train_image_transform(24, mean=mean, std=std)(x))  # it is random
    ev = eval_image_transform(28, mean=mean, std=std)(x)
    assert torch.allclose(ev, (x - 0.5) / 0.25, atol=1e-5)


def test_point_augment_rotates_about_up_axis_and_keeps_features():
    torch.manual_seed(0)
    points = torch.randn(4, 50, 4)
    rot = PointCloudAugment(scale=(1.0, 1.0), shift=0.0, jitter_sigma=0.0, up_axis=1)
    out = rot(points)
    assert torch.equal(out[..., 3], points[..., 3])  # extra channels pass through
    assert torch.allclose(out[..., 1], points[..., 1])  # the up coordinate is unchanged
    assert torch.allclose(out[..., [0, 2]].norm(dim=-1), points[..., [0, 2]].norm(dim=-1), atol=1e-5)
    assert not torch.allclose(out, points)

    flat = PointCloudAugment(num_coords=2, scale=(2.0, 2.0), shift=0.0, rotate=False, jitter_sigma=0.0)
    assert torch.allclose(flat(points[..., :3])[..., :2], 2 * points[..., :2])
    jitter = PointCloudAugment(scale=(1.0, 1.0), shift=0.0, rotate=False, jitter_sigma=1.0, jitter_clip=0.05)
    assert (jitter(points)[..., :3] - points[..., :3]).abs().max() <= 0.05 + 1e-6
    shift = PointCloudAugment(scale=(1.0, 1.0), shift=0.2, rotate=False, jitter_sigma=0.0)(points) - points
    assert torch.allclose(shift[:, :1, :3].expand(-1, 50, -1), shift[..., :3], atol=1e-6)  # one shift per cloud
    assert shift.abs().max() <= 0.2 + 1e-6
    assert math.isclose(float(shift[..., 3].abs().max()), 0.0)


def test_pad_and_collate():
    padded, mask = pad_sequences([torch.tensor([3, 4, 5]), torch.tensor([7])])
    assert padded.tolist() == [[3, 4, 5], [7, 0, 0]] and mask.tolist() == [[True, True, True], [True, False, False]]

    batch = [(torch.tensor([1, 2]), 0), (torch.tensor([1, 2, 3, 4]), 1)]
    ids, mask, labels = collate_padded(batch)
    assert ids.shape == (2, 4) and mask.sum().item() == 6 and labels.tolist() == [0, 1]

    scenes = [(torch.ones(3, 3), torch.tensor([1, 2, 3])), (torch.ones(2, 3), torch.tensor([4, 5]))]
    points, mask, targets = collate_padded(scenes)
    assert points.shape == (2, 3, 3) and targets[1].tolist() == [4, 5, IGNORE_INDEX]
    assert mask.tolist() == [[True] * 3, [True, True, False]]

    pairs = [((torch.tensor([1]), torch.tensor([2, 3])), 1), ((torch.tensor([4, 5, 6]), torch.tensor([7])), 0)]
    (a, b), (mask_a, mask_b), labels = collate_padded(pairs)
    assert a.shape == (2, 3) and b.shape == (2, 2) and mask_a.sum() == 4 and mask_b.sum() == 3

    parts = [(torch.ones(2, 3), torch.tensor([0, 1]), 4), (torch.ones(2, 3), torch.tensor([2, 3]), 9)]
    _, _, _, category = collate_padded(parts)
    assert category.tolist() == [4, 9]
    with pytest.raises(ValueError, match=r"sequence 1 has shape"):
        pad_sequences([torch.ones(2, 3), torch.ones(2, 4)])


def test_image_stats():
    images = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    images[:, 0] = 255
    images[:2, 1] = 255
    ds = ImageTensorDataset(images, torch.zeros(4, dtype=torch.long), MNIST_CLASSES)
    stats = compute_image_stats(ds, batch_size=3)
    assert stats["mean"] == pytest.approx([1.0, 0.5]) and stats["std"] == pytest.approx([0.0, 0.5])


def test_flip_shift_moves_each_image_whole_and_within_the_bound():
    """Every output is its input, maybe mirrored, translated by at most ``shift`` pixels with zeros shifted in."""
    torch.manual_seed(0)
    images = torch.rand(64, 2, 6, 7) + 1  # > 0 everywhere, so zero marks exactly the shifted-in border
    out = RandomFlipShift(flip=True, shift=2)(images)
    assert out.shape == images.shape
    seen_flips, seen_offsets = set(), set()
    for image, moved in zip(images, out, strict=True):
        padded = [nn.functional.pad(im, (2, 2, 2, 2)) for im in (image, image.flip(-1))]
        matches = [
            (flipped, dy, dx)
            for flipped, source in enumerate(padded)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(source[:, dy : dy + 6, dx : dx + 7], moved)
        ]
        assert matches, "an output is not a flipped / shifted copy of its input"
        seen_flips.add(matches[0][0])
        seen_offsets.add(matches[0][1:])
    assert seen_flips == {0, 1} and len(seen_offsets) > 10  # both orientations and many offsets occur
    torch.testing.assert_close(RandomFlipShift(flip=False, shift=0)(images), images)
    with pytest.raises(ValueError, match=r"shift must be >= 0"):
        RandomFlipShift(flip=False, shift=-1)
    with pytest.raises(ValueError, match=r"image batches"):
        RandomFlipShift(flip=True, shift=1)(torch.rand(3, 100, 2))


def test_random_erasing_zeroes_one_rectangle_of_the_drawn_size_in_about_p_of_the_images():
    torch.manual_seed(0)
    images = torch.rand(2000, 2, 20, 30) + 1  # > 0 everywhere, so zero marks exactly the erased pixels
    out = RandomErasing(p=0.5, area=(0.05, 0.3), max_aspect=2.0)(images)
    erased = out == 0
    assert torch.equal(erased[:, 0], erased[:, 1])  # every channel of a pixel is erased together
    kept = ~erased
    torch.testing.assert_close(out[kept], images[kept])
    mask = erased[:, 0]
    hit = mask.flatten(1).any(dim=1)
    assert 0.45 < hit.float().mean() < 0.55
    for m in mask[hit][:200]:
        rows, cols = m.any(dim=1).nonzero()[:, 0], m.any(dim=0).nonzero()[:, 0]
        height, width = len(rows), len(cols)
        # one solid axis-aligned rectangle: contiguous rows and columns, every pixel of their product erased
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        assert int(m.sum()) == height * width
        # its area and aspect, up to rounding each side to whole pixels
        assert 0.05 * 600 * 0.75 <= height * width <= 0.3 * 600 * 1.25
        assert 1 / 2.0 / 1.5 <= height / width <= 2.0 * 1.5
    torch.testing.assert_close(RandomErasing(p=0.0)(images), images)
    assert (RandomErasing(p=1.0)(images) == 0).flatten(1).any(dim=1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1.5}, r"probability must be in \[0, 1\]"),
        ({"p": 0.5, "area": (0.4, 0.1)}, r"0 < low <= high <= 1"),
        ({"p": 0.5, "max_aspect": 0.5}, r"max_aspect must be >= 1"),
    ],
)
def test_random_erasing_rejects_bad_settings_and_non_image_batches(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomErasing(**kwargs)
    with pytest.raises(ValueError, match=r"image batches \(b, c, h, w\)"):
        RandomErasing(p=0.5)(torch.rand(3, 100, 2))
