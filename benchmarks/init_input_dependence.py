"""How much a freshly initialised model's features depend on its input: the spread across samples of the tokens,
the latents and the head's input, relative to their typical magnitude (RESULTS.md §6, the d13 protocol's
classifiers on MNIST digits zero-padded to 64x64, most of whose patches are pure background).

    python benchmarks/init_input_dependence.py > benchmarks/init_input_dependence.txt

Needs MNIST fetched (`bixt data fetch mnist`). A value near 0 means the features are almost the same for every input,
so that a zero-initialised head gets almost no signal to separate the classes at the start of training.
"""

from __future__ import annotations

import torch

import bixt
from bixt.data import load_dataset

MODEL = dict(img_size=64, in_chans=1, num_classes=10, embed_dim=128, num_heads=4, num_latents=32)


def relative_spread(features: torch.Tensor) -> float:
    """Mean over features of the std across samples, over the mean absolute value."""
    return float(features.std(0).mean() / features.abs().mean())


def main() -> None:
    digits = load_dataset("mnist", split="test")
    images = torch.stack([digits[i][0] for i in range(64)]).float()
    images = torch.nn.functional.pad(images, (18,) * 4)  # 28 -> 64, as configs/mnist-64-classifier.yaml
    print("64 MNIST test digits padded to 64x64; spread across samples / mean magnitude, at initialisation")
    print(f"{'depth':>5s} {'seed':>4s} {'tokens':>8s} {'latents':>8s} {'head input':>10s}")
    for depth in (7, 6):
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = bixt.create_model("bixt_ti_l64_d13_p16s8", depth=depth, **MODEL).eval()
            with torch.no_grad():
                tokens = model.tokenizer(images).tokens
                latents = model.forward_features(images)
                head_input = model.forward_head(latents, pre_logits=True)
            spreads = (relative_spread(tokens), relative_spread(latents), relative_spread(head_input))
            print(f"{depth:>5d} {seed:>4d} {spreads[0]:>8.3f} {spreads[1]:>8.3f} {spreads[2]:>10.3f}")


if __name__ == "__main__":
    main()
