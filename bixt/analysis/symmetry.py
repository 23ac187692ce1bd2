"""How symmetric are the two directions of cross-attention? Measures per layer and head, with a chance level.

For one two-way layer, head and input, let P1 = latents -> tokens attention (m, n), softmax over tokens (where each
latent gathers from), and P2 = tokens -> latents attention (n, m), softmax over latents. The paper's motivating
observation (Figure 1) is that P1 and P2ᵀ look alike after training a sequential model. Two measures:

- ``logit``: the Pearson correlation of the similarity logits behind P1 and P2ᵀ. A softmax forgets one constant per
  row it normalises, so the logits are known only up to per-latent offsets (from P1) and per-token offsets (from
  P2); both are removed by double-centring log P1 and log P2ᵀ, which recovers each logit matrix up to exactly those
  offsets. For BiXT both come from one shared similarity matrix, so this is 1 by construction; for a sequential
  model it measures how alike its two independently projected similarity matrices became.
- ``map``: the Pearson correlation of the post-softmax maps P1 and P2ᵀ themselves (what Figure 1 shows). Not 1 even
  for BiXT, since the two softmaxes normalise along different axes.

Chance: the same measures with the latents of P2ᵀ randomly permuted (a new permutation per image), which keeps
every marginal statistic of the two maps and breaks only the correspondence between the directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bixt.layers.attention_math import AttentionMaps

MEASURES = ("logit", "map")
# log(0) guard: softmax probabilities that underflowed in float32 become this instead of -inf.
_TINY = 1e-30


def _attention_maps(model: nn.Module, images: torch.Tensor) -> list[AttentionMaps]:
    """Every cross-attention layer's post-softmax maps for a batch (the model's attention-returning forward)."""
    _, intermediates = model.forward_attention(images)
    return intermediates.attention


def _pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correlation over the last two dims: (..., m, n) x2 -> (...)."""
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    y = y - y.mean(dim=(-2, -1), keepdim=True)
    num = (x * y).sum(dim=(-2, -1))
    den = (x.square().sum(dim=(-2, -1)) * y.square().sum(dim=(-2, -1))).sqrt()
    return num / den.clamp_min(1e-300)


def _double_centre(x: torch.Tensor) -> torch.Tensor:
    """Remove row and column means of (..., m, n): what is left does not depend on per-row or per-column offsets."""
    return x - x.mean(dim=-1, keepdim=True) - x.mean(dim=-2, keepdim=True) + x.mean(dim=(-2, -1), keepdim=True)


def pair_scores(maps: AttentionMaps, permutation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Both measures for one two-way layer: each (b, h). `permutation` (b, m) reorders the latents of P2ᵀ per input
    (the chance level)."""
    if maps.tokens_to_latents is None:
        raise ValueError("a one-sided layer has no tokens -> latents attention to compare with")
    p1 = maps.latents_to_tokens.double()  # (b, h, m, n)
    p2t = maps.tokens_to_latents.double().transpose(-2, -1)  # (b, h, m, n)
    if p1.shape != p2t.shape:
        raise ValueError(f"attention maps disagree in shape: {tuple(p1.shape)} vs transposed {tuple(p2t.shape)}")
    if permutation is not None:
        index = permutation[:, None, :, None].expand_as(p2t)  # (b, h, m, n): the same reordering for every head
        p2t = p2t.gather(2, index)
    logits1 = _double_centre(p1.clamp_min(_TINY).log())
    logits2 = _double_centre(p2t.clamp_min(_TINY).log())
    return {"logit": _pearson(logits1, logits2), "map": _pearson(p1, p2t)}


@dataclass
class SymmetryScores:
    """Mean over images of each measure, per two-way layer and head: ``scores[measure]`` is (layers, heads).

    ``chance[measure]`` is the same with the latents permuted. ``layers`` are the encoder layer indices measured.
    """

    scores: dict[str, torch.Tensor]
    chance: dict[str, torch.Tensor]
    layers: list[int]
    num_images: int

    def summary(self) -> dict[str, float]:
        """Each measure and its chance level averaged over layers and heads."""
        out = {}
        for measure in MEASURES:
            out[measure] = float(self.scores[measure].mean())
            out[f"{measure}_chance"] = float(self.chance[measure].mean())
        return out


@torch.no_grad()
def measure_symmetry(model: nn.Module, images: torch.Tensor, *, batch_size: int = 100, seed: int = 0) -> SymmetryScores:
    """Symmetry of every two-way cross-attention layer of an image model over `images` (b, c, H, W), preprocessed.

    Works for image models whose cross-attention returns both directions' maps (BiXT and the sequential baseline).
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (b, c, H, W) batch, got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, dict[str, torch.Tensor]] = {"scores": {}, "chance": {}}
    layers: list[int] = []
    try:
        for start in range(0, images.shape[0], batch_size):
            attention = _attention_maps(model, images[start : start + batch_size])
            two_way = [(i, maps) for i, maps in enumerate(attention) if maps.tokens_to_latents is not None]
            if not two_way:
                raise ValueError(f"{type(model).__name__} has no two-way cross-attention layer to measure")
            layers = [i for i, _ in two_way]
            batch, _, num_latents, _ = two_way[0][1].latents_to_tokens.shape
            permutation = torch.rand(batch, num_latents, generator=generator).argsort(dim=1)  # one per image
            for key, perm in (("scores", None), ("chance", permutation)):
                per_layer = [pair_scores(maps, perm) for _, maps in two_way]
                for measure in MEASURES:
                    batch_sum = torch.stack([s[measure].sum(dim=0) for s in per_layer])  # (layers, heads)
                    sums[key][measure] = sums[key].get(measure, 0) + batch_sum
    finally:
        model.train(was_training)
    count = images.shape[0]
    return SymmetryScores(
        scores={m: (v / count).float() for m, v in sums["scores"].items()},
        chance={m: (v / count).float() for m, v in sums["chance"].items()},
        layers=layers,
        num_images=count,
    )


@torch.no_grad()
def layer_attention(model: nn.Module, images: torch.Tensor, layer: int) -> tuple[int, AttentionMaps]:
    """Head-averaged post-softmax maps of one cross-attention layer: latents_to_tokens (b, m, n) and
    tokens_to_latents (b, n, m) (None for a one-sided layer). Negative `layer` counts from the end; returns the
    layer's index from 0 with the maps."""
    was_training = model.training
    model.eval()
    try:
        attention = _attention_maps(model, images)
    finally:
        model.train(was_training)
    depth = len(attention)
    if not -depth <= layer < depth:
        raise ValueError(f"layer {layer} does not exist: the model has {depth} cross-attention layers (0..{depth - 1})")
    maps = attention[layer]
    to_latents = maps.tokens_to_latents.mean(dim=1) if maps.tokens_to_latents is not None else None
    return layer % depth, AttentionMaps(maps.latents_to_tokens.mean(dim=1), to_latents)
