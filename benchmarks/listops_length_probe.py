"""Why does BiXT, trained on ListOps of 50-250 tokens, lose its accuracy past 1k tokens where the Transformer keeps
it (RESULTS.md §4)? One hypothesis: each latent's softmax runs over all n tokens, so on 8x longer expressions its
attention spreads over many more tokens and what it gathers is diluted. This probe measures that spread and tests
the hypothesis by sharpening only the latents' softmax in proportion to log n (the tokens' softmax over the latents,
whose count does not change, is left as it was).

    python benchmarks/listops_length_probe.py RUN_DIR [RUN_DIR ...] > benchmarks/listops_length_probe.txt

RUN_DIR: finished `listops-bixt-short` runs of the lra study. For each length range the first 1,000 generated test
expressions (the study's evaluation sets) are scored three ways, in fp32:
- as trained, on the explicit attention path (what `bixt eval` gives, up to summation order);
- with every latent's attention logits multiplied by log(n) / log(REFERENCE_LENGTH), n = that expression's length:
  the latents are as concentrated, in entropy terms, on a long expression as on a training-length one;
- and it reports how many tokens a latent effectively attends to (exp of its attention's entropy, mean over latents,
  heads, layers and expressions) as trained.
A recovery of accuracy under the rescaling supports dilution as the cause; none points elsewhere (the positions
past the training lengths, the fixed number of latents).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator

import torch

import bixt.layers.attention as attention_layers
from bixt.analysis.run_data import model_at, run_config
from bixt.data import load_dataset
from bixt.data.collate import collate_padded
from bixt.engine.checkpoint import resolve_checkpoint

RANGES = ((50, 250), (256, 512), (512, 1024), (1024, 2048))
ITEMS = 1000
BATCH = 50
REFERENCE_LENGTH = 150  # the middle of the training lengths, 50-250


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


def top1(model: torch.nn.Module, dataset) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), BATCH):
            ids, _, labels = collate_padded([dataset[i] for i in range(start, min(start + BATCH, len(dataset)))])
            correct += int((model(ids).argmax(-1) == labels).sum())
    return 100 * correct / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished listops-bixt-short run directories")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"first {ITEMS} generated test expressions per range; latents' logits rescaled by log(n) / log(150)")
    print(f"{'run':>40s} {'tokens':>10s} {'top1':>6s} {'rescaled':>8s} {'tokens per latent':>17s}")
    for run in args.runs:
        checkpoint = resolve_checkpoint(run, prefer="last")
        _, config = run_config(checkpoint)
        model = model_at(config, checkpoint)
        name = "/".join(checkpoint.parts[-5:-3])
        for low, high in RANGES:
            options = {"num_examples": ITEMS, "config": {"min_length": low, "max_length": high}}
            dataset = load_dataset("listops", "test", **options)
            with latent_attention(rescale=False) as plain:
                as_trained = top1(model, dataset)
            with latent_attention(rescale=True):
                rescaled = top1(model, dataset)
            spread = plain.spread_sum / plain.spread_count
            print(f"{name:>40s} {f'{low}-{high}':>10s} {as_trained:6.2f} {rescaled:8.2f} {spread:17.1f}", flush=True)


if __name__ == "__main__":
    main()
