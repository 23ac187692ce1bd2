"""Why does BiXT, trained on ListOps of 50-250 tokens, lose its accuracy past 1k tokens where the Transformer keeps
it (RESULTS.md §4)? Two hypotheses, each tested by changing one thing at evaluation time:
- dilution: each latent's softmax runs over all n tokens, so on 8x longer expressions it spreads over many more of
  them. Test: multiply the latents' attention logits by log(n) / log(REFERENCE_LENGTH) (the tokens' softmax over
  the latents, whose number does not change, stays as trained), and report how many tokens a latent effectively
  attends to (exp of its attention's entropy, mean over latents, heads, layers and expressions) as trained;
- positions: past 250 tokens the sine position features take values never seen in training. Test: interpolate the
  positions of an expression longer than TRAINED_LENGTH into 0 .. TRAINED_LENGTH (position i of n becomes
  i * TRAINED_LENGTH / n), for BiXT and the Transformer alike.

    python benchmarks/listops_length_probe.py RUN_DIR [RUN_DIR ...] > benchmarks/listops_length_probe.txt

RUN_DIR: finished `listops-{bixt,transformer}-short` runs of the lra study. Each length range is scored on its first
1,000 generated test expressions, in fp32, on the explicit attention path for BiXT: the study's evaluation sets
(generation goes in fixed seeded chunks, so the 50-250 row is the first 1,000 of the runs' own test split), and the
"trained" column reproduces the study's evaluation table.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import types
from collections.abc import Iterator

import torch

import bixt.layers.attention as attention_layers
from bixt.analysis.run_data import model_at, run_config
from bixt.data import load_dataset
from bixt.data.collate import collate_padded
from bixt.engine.checkpoint import resolve_checkpoint
from bixt.layers.pos_embed import sinusoidal_features_1d
from bixt.tokenizers.output import TokenizerOutput
from bixt.tokenizers.sequence import PADDING_ID

RANGES = ((50, 250), (256, 512), (512, 1024), (1024, 2048))
ITEMS = 1000
BATCH = 50
REFERENCE_LENGTH = 150  # the middle of the training lengths, 50-250
TRAINED_LENGTH = 250  # the longest training expression


class LatentAttention:
    """Stands in for the attention functions of `bixt.layers.attention` wherever latents gather from tokens (the
    bi-directional layers and the one-sided last layer): the explicit math, the latents' logits optionally rescaled
    by log(n) / log(REFERENCE_LENGTH), and the effective number of tokens each latent attends to recorded. The
    latents' self-attention (no token mask) keeps the original function."""

    def __init__(self, rescale: bool, original_attend) -> None:
        self.rescale, self.original_attend = rescale, original_attend
        self.spread_sum, self.spread_count = 0.0, 0

    def gather(self, sim: torch.Tensor, v_tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """sim: (b, h, m, n) scaled similarities of latents to tokens -> the latents' update (b, h, m, d)."""
        lengths = token_mask.sum(-1).to(sim.dtype)  # (b,)
        scale = lengths.log() / math.log(REFERENCE_LENGTH) if self.rescale else torch.ones_like(lengths)
        logits = (sim * scale[:, None, None, None]).masked_fill(~token_mask[:, None, None, :], float("-inf"))
        attn = logits.softmax(-1)
        entropy = -(attn * attn.clamp_min(1e-30).log()).sum(-1)  # (b, h, m)
        self.spread_sum += float(entropy.exp().mean(dim=(1, 2)).sum())
        self.spread_count += entropy.shape[0]
        return attn @ v_tokens

    def bidirectional(self, r_latents, v_latents, r_tokens, v_tokens, *, token_mask, dropout_p=0.0, return_maps=False):
        sim = (r_latents * r_latents.shape[-1] ** -0.5) @ r_tokens.transpose(-2, -1)  # (b, h, m, n)
        tokens_out = sim.transpose(-2, -1).softmax(-1) @ v_latents  # over the latents: as trained
        tokens_out = tokens_out * token_mask[:, None, :, None].to(tokens_out.dtype)
        return self.gather(sim, v_tokens, token_mask), tokens_out, None

    def attend(self, q, k, v, *, key_mask=None, dropout_p=0.0, return_maps=False):
        if key_mask is None:  # the latents' self-attention
            return self.original_attend(q, k, v, dropout_p=dropout_p, return_maps=return_maps)
        return self.gather((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), v, key_mask), None


@contextlib.contextmanager
def latent_attention(rescale: bool) -> Iterator[LatentAttention]:
    originals = attention_layers.bidirectional_attend, attention_layers.attend
    stand_in = LatentAttention(rescale, originals[1])
    attention_layers.bidirectional_attend, attention_layers.attend = stand_in.bidirectional, stand_in.attend
    try:
        yield stand_in
    finally:
        attention_layers.bidirectional_attend, attention_layers.attend = originals


def interpolated_positions(tokenizer, ids: torch.Tensor) -> TokenizerOutput:
    """The sequence tokenizer's forward, with each expression's positions squeezed into 0 .. TRAINED_LENGTH."""
    tokenizer.check_input(ids)
    mask = ids != PADDING_ID
    lengths = mask.sum(-1, keepdim=True).to(torch.float32)  # (b, 1)
    positions = torch.arange(ids.shape[1], dtype=torch.float32)[None] * (TRAINED_LENGTH / lengths).clamp(max=1.0)
    feats = sinusoidal_features_1d(positions.flatten(), num_feats=tokenizer.num_position_feats)
    positions_embedded = tokenizer.pos_proj(feats).view(*ids.shape, -1)
    return TokenizerOutput(tokens=tokenizer.embed(ids) + positions_embedded, mask=mask)


@contextlib.contextmanager
def positions_interpolated(model: torch.nn.Module) -> Iterator[None]:
    model.tokenizer.forward = types.MethodType(interpolated_positions, model.tokenizer)
    try:
        yield
    finally:
        del model.tokenizer.forward  # back to the class's own


def top1(model: torch.nn.Module, dataset) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), BATCH):
            ids, _, labels = collate_padded([dataset[i] for i in range(start, min(start + BATCH, len(dataset)))])
            correct += int((model(ids).argmax(-1) == labels).sum())
    return 100 * correct / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished listops-{bixt,transformer}-short run directories")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"first {ITEMS} generated test expressions per range, top-1 (%): as trained; BiXT's latents' logits x")
    print(
        f"log(n) / log({REFERENCE_LENGTH}); positions interpolated into 0..{TRAINED_LENGTH}; tokens a latent attends to"
    )
    print(f"{'run':>36s} {'tokens':>10s} {'trained':>7s} {'sharper':>7s} {'interp.':>7s} {'tokens/latent':>13s}")
    for run in args.runs:
        checkpoint = resolve_checkpoint(run, prefer="last")
        _, config = run_config(checkpoint)
        model = model_at(config, checkpoint)
        is_bixt = model.config.encoder == "bixt"
        name = "/".join(checkpoint.parts[-4:-2])
        for low, high in RANGES:
            options = {"num_examples": ITEMS, "config": {"min_length": low, "max_length": high}}
            dataset = load_dataset("listops", "test", **options)
            if is_bixt:
                with latent_attention(rescale=False) as plain:
                    as_trained = top1(model, dataset)
                with latent_attention(rescale=True):
                    sharper = f"{top1(model, dataset):7.2f}"
                spread = f"{plain.spread_sum / plain.spread_count:13.1f}"
            else:
                as_trained, sharper, spread = top1(model, dataset), f"{'-':>7s}", f"{'-':>13s}"
            with positions_interpolated(model):
                interpolated = top1(model, dataset)
            print(
                f"{name:>36s} {f'{low}-{high}':>10s} {as_trained:7.2f} {sharper} {interpolated:7.2f} {spread}",
                flush=True,
            )


if __name__ == "__main__":
    main()
