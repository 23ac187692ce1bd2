"""Engine parts in isolation: schedule, weight-decay groups, optimizers, metrics, config parsing and checks."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from bixt.engine.builders import build_ema, ema_decay_at
from bixt.engine.config import ConfigError, dump_config, load_config, parse_config, valid_keys
from bixt.engine.distributed import DistInfo
from bixt.engine.metrics import ConfusionMetrics, PointSegmentationMetrics, TopKAccuracy
from bixt.engine.optim import build_optimizer, fused_adamw_applies, param_groups
from bixt.engine.preflight import check_config
from bixt.engine.schedule import cosine_lr


def test_cosine_schedule_warmup_peak_and_floor():
    kw = dict(base_lr=1.0, epochs=10, warmup_epochs=2, warmup_lr=0.1, min_lr=0.01)
    assert cosine_lr(0, **kw) == pytest.approx(0.1)
    assert cosine_lr(1, **kw) == pytest.approx(0.55)  # halfway up the linear warm-up
    assert cosine_lr(2, **kw) == pytest.approx(1.0)
    assert cosine_lr(6, **kw) == pytest.approx(0.01 + 0.99 * 0.5)  # halfway down the cosine
    assert cosine_lr(10, **kw) == pytest.approx(0.01)
    decay = [cosine_lr(2 + 8 * i / 50, **kw) for i in range(51)]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    with pytest.raises(ValueError, match="warmup_epochs"):
        cosine_lr(0, base_lr=1.0, epochs=2, warmup_epochs=3)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, 4, 8))  # 3-D: decayed, as in the paper
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.gamma = nn.Parameter(torch.ones(8))
        self.table = nn.Parameter(torch.randn(3, 8))

    def no_weight_decay(self) -> set[str]:
        return {"table"}


def test_weight_decay_groups():
    model = _Tiny()
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {"latents", "proj.weight"}
    assert {names[id(p)] for p in no_decay["params"]} == {"proj.bias", "norm.weight", "norm.bias", "gamma", "table"}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_optimizers_step_and_lower_the_loss(name):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    config = parse_config(["--optim.name", name, "--optim.lr", "0.05"]).optim
    optimizer = build_optimizer(model, config)
    first = nn.functional.mse_loss(model(x), y).item()
    for _ in range(30):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    assert nn.functional.mse_loss(model(x), y).item() < first * 0.8


def test_adamw_is_fused_on_the_cpu_and_steps_as_the_per_parameter_loop_does():
    torch.manual_seed(0)
    model = _Tiny()
    reference = copy.deepcopy(model)
    config = parse_config(["--optim.lr", "0.01", "--optim.weight_decay", "0.05"]).optim
    optimizer = build_optimizer(model, config)
    assert optimizer.defaults["fused"] is True
    looping = torch.optim.AdamW(
        param_groups(reference, 0.05), lr=0.01, betas=config.betas, eps=config.eps, foreach=False
    )
    for step in range(5):
        for net, opt in ((model, optimizer), (reference, looping)):
            torch.manual_seed(step)  # the same gradients for both copies
            opt.zero_grad()
            sum((p * torch.randn_like(p)).sum() for p in net.parameters()).backward()
            opt.step()
    for (name, fused), looped in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(fused, looped, msg=name)


def test_fused_adamw_applies_to_floating_cpu_parameters_only():
    assert fused_adamw_applies([torch.zeros(2, requires_grad=True)])
    assert not fused_adamw_applies([torch.zeros(2, device="meta")])
    assert not fused_adamw_applies([])


def test_ema_decay_ramps_up_so_the_first_weights_fade():
    """The EMA follows w <- d_t w + (1 - d_t) x with d_t = min(decay, (1 + t) / (10 + t)); a fixed 0.999 would
    still hold 0.999**2340 = 9.6% of the first weights after the main job's 2,340 steps."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    ema = build_ema(model, 0.999)
    expected = None
    for t, value in enumerate([0.0] + [1.0] * 2339):
        model[0].weight.data.fill_(value)
        model[1].num_batches_tracked.fill_(t + 1)
        ema.update_parameters(model)
        expected = value if expected is None else expected + (1 - ema_decay_at(0.999, t)) * (value - expected)
    averaged = ema.module[0].weight.item()
    assert averaged == pytest.approx(expected, abs=1e-5)
    assert averaged > 0.999  # the first weights (0) have faded; a fixed decay would leave 0.904
    assert ema.module[1].num_batches_tracked.item() == 2340  # a count: copied, not averaged
    assert [ema_decay_at(0.999, t) for t in (0, 1, 10, 10_000)] == [0.1, 2 / 11, 11 / 20, 0.999]


def test_topk_accuracy():
    metric = TopKAccuracy()
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 1, 0], [1.0, 2, 3, 4, 5, 6]])
    metric.update(logits, torch.tensor([5, 5, 3]))  # top-1 hit; ranked 6th (miss); ranked 3rd (top-5 only)
    result = metric.compute()
    assert result["top1"] == pytest.approx(100 / 3)
    assert result["top5"] == pytest.approx(200 / 3)
    soft = TopKAccuracy()
    soft.update(logits[:1], torch.tensor([[0.0, 0, 0, 0, 0.3, 0.7]]))  # soft targets score against their argmax
    assert soft.compute()["top1"] == 100.0


def test_confusion_metrics_miou_by_hand():
    metric = ConfusionMetrics(3)
    target = torch.tensor([[[0, 0], [1, 2]]])  # (b=1, H=2, W=2)
    pred = torch.tensor([[[0, 1], [1, 1]]])
    logits = nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()  # (b, c, H, W)
    metric.update(logits, target)
    ignored = torch.full_like(target, -100)
    metric.update(logits, ignored)  # padding labels are skipped entirely
    result = metric.compute()
    # class 0: I=1, U=2; class 1: I=1, U=3; class 2: I=0, U=1
    assert result["miou"] == pytest.approx(100 * (1 / 2 + 1 / 3 + 0) / 3)
    assert result["acc"] == pytest.approx(50.0)


def test_point_segmentation_instance_miou_by_hand():
    metric = PointSegmentationMetrics(3)
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, -100]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 1]])
    metric.update(nn.functional.one_hot(pred, 3).float(), target)
    result = metric.compute()
    # sample 1: class 0 IoU 1/2, class 1 IoU 2/3 -> 7/12; sample 2 (3 valid points): class 2 IoU 2/3, class 0 IoU 0
    assert result["instance_miou"] == pytest.approx(100 * (7 / 12 + 1 / 3) / 2)
    assert result["acc"] == pytest.approx(100 * 5 / 7)


def test_unknown_key_lists_valid_keys(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as error:
        parse_config(["-c", str(recipe)])
    message = str(error.value)
    assert "lrr" in message and "did you mean: optim.lr" in message
    # The real message comes first and the valid keys are one command away, not a 60-key list burying it (issue 13).
    assert message.startswith("invalid configuration: Group 'optim' does not accept option 'lrr'")
    assert "bixt train --help" in message and sum(key in message for key in valid_keys()) <= 4
    with pytest.raises(ConfigError, match="valid keys"):
        parse_config(["--batch_sise", "8"])
    with pytest.raises(ConfigError, match="did you mean: batch_size"):
        parse_config(["--batch_sise", "8"])


def test_ill_typed_value_is_rejected():
    with pytest.raises(ConfigError, match=r"optim\.name"):
        parse_config(["--optim.name", "sgd"])
    with pytest.raises(ConfigError, match="batch_size"):
        parse_config(["--batch_size", "many"])


def test_resolved_config_round_trips(tmp_path):
    config = parse_config(["--optim.lr", "3e-4", "--model.options", "{embed_dim: 32}", "--augment.mean", "[0.5]"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert config.optim.lr == 3e-4 and config.model.options == {"embed_dim": 32} and config.augment.mean == (0.5,)


def test_every_recipe_parses():
    from pathlib import Path

    recipes = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert len(recipes) >= 9
    for recipe in recipes:
        assert load_config(recipe).schedule.epochs >= 1


def test_config_checks_before_training():
    config = parse_config(["--batch_size", "10"])
    cpu = torch.device("cpu")
    assert check_config(config, DistInfo(world_size=2), cpu) == 5
    with pytest.raises(ConfigError, match="not divisible by 3 process"):
        check_config(config, DistInfo(world_size=3), cpu)
    with pytest.raises(ConfigError, match="not divisible"):
        check_config(parse_config(["--batch_size", "10", "--grad_accum_steps", "4"]), DistInfo(), cpu)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        check_config(parse_config(["--precision", "fp16"]), DistInfo(), cpu)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        check_config(parse_config(["--schedule.epochs", "1", "--schedule.warmup_epochs", "2"]), DistInfo(), cpu)


def test_metric_log_drops_steps_after_a_resume_point(tmp_path):
    from bixt.engine.metric_log import MetricLog, read_metrics

    log = MetricLog(tmp_path)
    for step in range(1, 6):
        log.write("train", step=step, epoch=step / 5, loss=1.0 / step)
    log.write("eval", step=5, epoch=1.0, top1=50.0)
    log.drop_after(3)
    assert [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        ("train", s) for s in (1, 2, 3)
    ]


@pytest.mark.parametrize("pad_before_normalize", [False, True])
def test_augment_normalises_and_pads_images(pad_before_normalize: bool):
    from bixt.engine.augment import BatchAugment
    from bixt.engine.config import AugmentSection
    from bixt.engine.tasks import TASKS, Batch

    augment = BatchAugment(
        AugmentSection(image="normalize", pad=2, pad_before_normalize=pad_before_normalize),
        task=TASKS["classification"],
        train=False,
        num_classes=10,
        mean=[0.5],
        std=[0.25],
    )
    images = torch.rand(3, 1, 28, 28)
    out = augment(Batch((images,), torch.zeros(3, dtype=torch.long))).inputs[0]
    assert out.shape == (3, 1, 32, 32)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], (images - 0.5) / 0.25)
    # Padded after normalising, the border is 0 (the mean grey); padded before, it is a black pixel normalised.
    border = torch.cat([out[..., :2, :].flatten(), out[..., -2:, :].flatten(), out[..., :, :2].flatten()])
    assert torch.all(border == ((0 - 0.5) / 0.25 if pad_before_normalize else 0.0))
    points_augment = BatchAugment(AugmentSection(pad=2), task=TASKS["classification"], train=True, num_classes=10)
    with pytest.raises(ValueError, match="image batches"):
        points_augment(Batch((torch.rand(3, 100, 2),), torch.zeros(3, dtype=torch.long)))


def test_augment_flips_and_shifts_training_images_only():
    from bixt.engine.augment import BatchAugment
    from bixt.engine.config import AugmentSection
    from bixt.engine.tasks import TASKS, Batch

    torch.manual_seed(0)
    section = AugmentSection(pad=1, flip=True, shift=2)
    images = torch.rand(16, 1, 8, 8) + 1
    batch = Batch((images,), torch.zeros(16, dtype=torch.long))
    evaluated = BatchAugment(section, task=TASKS["classification"], train=False, num_classes=10)(batch).inputs[0]
    torch.testing.assert_close(evaluated, nn.functional.pad(images, (1,) * 4))
    trained = BatchAugment(section, task=TASKS["classification"], train=True, num_classes=10)(batch).inputs[0]
    assert trained.shape == (16, 1, 10, 10) and not torch.equal(trained, evaluated)
    # the 8x8 image sits inside a 1-pixel border, so a shift of 2 pushes out at most one of its rows and columns
    assert (trained != 0).sum(dim=(1, 2, 3)).min() >= 7 * 7


def test_augment_erases_training_images_only_and_checks_the_probability():
    from bixt.engine.augment import BatchAugment
    from bixt.engine.config import AugmentSection
    from bixt.engine.tasks import TASKS, Batch

    torch.manual_seed(0)
    section = AugmentSection(erase=1.0)
    images = torch.rand(16, 1, 8, 8) + 1
    batch = Batch((images,), torch.zeros(16, dtype=torch.long))
    evaluated = BatchAugment(section, task=TASKS["classification"], train=False, num_classes=10)(batch).inputs[0]
    torch.testing.assert_close(evaluated, images)
    trained = BatchAugment(section, task=TASKS["classification"], train=True, num_classes=10)(batch).inputs[0]
    assert (trained == 0).flatten(1).any(dim=1).all()  # p = 1: every training image lost a rectangle
    with pytest.raises(ConfigError, match=r"augment.erase is a probability in \[0, 1\], got 2"):
        AugmentSection(erase=2).check()


def test_augment_resizes_images_before_normalising():
    from bixt.engine.augment import BatchAugment
    from bixt.engine.config import AugmentSection
    from bixt.engine.tasks import TASKS, Batch

    augment = BatchAugment(
        AugmentSection(image="normalize", resize=56),
        task=TASKS["classification"],
        train=False,
        num_classes=10,
        mean=[0.5],
        std=[0.25],
    )
    images = torch.rand(2, 1, 28, 28)
    out = augment(Batch((images,), torch.zeros(2, dtype=torch.long))).inputs[0]
    assert out.shape == (2, 1, 56, 56)
    # A 2x bilinear upsampling keeps the mean of each image; normalisation then acts on the resized image.
    torch.testing.assert_close(out.mean(dim=(2, 3)), (images.mean(dim=(2, 3)) - 0.5) / 0.25, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match=r"augment\.resize"):
        BatchAugment(AugmentSection(resize=0), task=TASKS["classification"], train=False, num_classes=10)
