"""Exact, additive task metrics: each keeps sums in one float64 tensor, so DDP reduces them with one all-reduce.

``update(logits, target)`` accumulates, ``compute()`` gives the figures; ``state`` is the tensor of sums that
:func:`bixt.engine.distributed.all_reduce_sum` adds up over processes before ``compute()``.
"""

from __future__ import annotations

import torch

from bixt.data.collate import IGNORE_INDEX


class Metric:
    state: torch.Tensor

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


class TopKAccuracy(Metric):
    """Top-1 and top-5 accuracy in percent. logits (b, c), target (b,) class indices or (b, c) soft targets."""

    def __init__(self, *, prefix: str = "") -> None:
        self.prefix = prefix
        self.state = torch.zeros(3, dtype=torch.float64)  # correct top-1, correct top-5, count

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        if target.ndim == 2:  # soft targets: score against the most likely class
            target = target.argmax(dim=1)
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices  # (b, k)
        hits = top == target[:, None]
        self.state += torch.tensor([hits[:, 0].sum().item(), hits.any(dim=1).sum().item(), target.numel()])

    def compute(self) -> dict[str, float]:
        correct1, correct5, count = self.state.tolist()
        count = max(count, 1.0)
        return {f"{self.prefix}top1": 100 * correct1 / count, f"{self.prefix}top5": 100 * correct5 / count}


class ConfusionMetrics(Metric):
    """Pixel accuracy and mean IoU (percent) from a confusion matrix over all evaluated pixels/points.

    logits (b, c, ...) with the class axis at ``class_dim``; target (b, ...) with IGNORE_INDEX skipped. mIoU
    averages over the classes that occur in the target or the prediction.
    """

    def __init__(self, num_classes: int, *, class_dim: int = 1) -> None:
        self.num_classes, self.class_dim = num_classes, class_dim
        self.state = torch.zeros(num_classes * num_classes, dtype=torch.float64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(dim=self.class_dim).flatten()
        target = target.flatten()
        keep = target != IGNORE_INDEX
        index = target[keep] * self.num_classes + pred[keep]
        self.state += torch.bincount(index.cpu(), minlength=self.num_classes**2).to(torch.float64)

    def compute(self) -> dict[str, float]:
        matrix = self.state.view(self.num_classes, self.num_classes)  # rows: target, columns: prediction
        true_positive = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        present = union > 0
        miou = (true_positive[present] / union[present]).mean().item() if present.any() else 0.0
        accuracy = (true_positive.sum() / matrix.sum().clamp_min(1)).item()
        return {"acc": 100 * accuracy, "miou": 100 * miou}


class PointSegmentationMetrics(Metric):
    """Per-point accuracy and instance mIoU (percent) for per-point labels: logits (b, n, c), target (b, n).

    Instance mIoU (the ShapeNetPart protocol) is the IoU averaged over the parts of each sample, then over samples;
    a part counts for a sample when it occurs in that sample's target or prediction.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.state = torch.zeros(4, dtype=torch.float64)  # correct points, points, sum of instance IoUs, instances

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(dim=-1)  # (b, n)
        valid = target != IGNORE_INDEX
        classes = torch.arange(self.num_classes, device=target.device)
        is_pred = (pred[..., None] == classes) & valid[..., None]  # (b, n, c)
        is_true = target[..., None] == classes
        intersection = (is_pred & is_true).sum(1).double()  # (b, c)
        union = (is_pred | is_true).sum(1).double()
        present = union > 0
        iou = torch.where(present, intersection / union.clamp_min(1), 0).sum(1) / present.sum(1).clamp_min(1)
        correct = ((pred == target) & valid).sum().item()
        self.state += torch.tensor([correct, valid.sum().item(), iou.sum().item(), target.shape[0]])

    def compute(self) -> dict[str, float]:
        correct, points, iou_sum, instances = self.state.tolist()
        return {"acc": 100 * correct / max(points, 1.0), "instance_miou": 100 * iou_sum / max(instances, 1.0)}


class MeanLoss:
    """Sample-weighted mean of the batch losses."""

    def __init__(self) -> None:
        self.state = torch.zeros(2, dtype=torch.float64)  # sum of per-sample losses, samples

    def update(self, loss: torch.Tensor, batch_size: int) -> None:
        self.state += torch.tensor([loss.item() * batch_size, batch_size])

    def compute(self) -> dict[str, float]:
        return {"loss": self.state[0].item() / max(self.state[1].item(), 1.0)}
