"""``bixt bench``: training-step / inference throughput, peak memory and FLOP/s over token counts, as JSON lines.

Every combination of --model, --tokens, --batch, --mode and --attn is one case; each case runs in a fresh process
(its own peak memory), all cases once per round, --rounds times, interleaved; the median round is kept. Example:

    bixt bench --model bixt_ti_l64_p16s4 --tokens 3136 --batch 8 --attn explicit fused chunked --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from bixt.analysis.plots import plot_scaling
from bixt.bench.suite import run_suite, write_jsonl
from bixt.bench.throughput import MODES, PRECISIONS, BenchCase
from bixt.commands import help_text, json_mapping
from bixt.layers.attention_paths import ATTENTION_PATHS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bixt bench", description=help_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", nargs="+", required=True, help="registered model names")
    parser.add_argument(
        "--tokens", nargs="+", type=int, required=True, help="token counts (image models: squares, e.g. 196 3136)"
    )
    parser.add_argument(
        "--options",
        type=json_mapping,
        default={},
        help="model config fields for every --model, a JSON object, e.g. '{\"embed_dim\": 64}'",
    )
    parser.add_argument("--batch", nargs="+", type=int, default=[8], help="batch sizes")
    parser.add_argument(
        "--mode", nargs="+", choices=MODES, default=["train"], help="train: forward+backward+AdamW step; infer"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="bf16 = bf16 autocast; auto: bf16 where the hardware makes it pay, else fp32 (bixt.precision)",
    )
    parser.add_argument("--attn", nargs="+", choices=ATTENTION_PATHS, default=["auto"], help="attention paths")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute each layer in backward")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and image input")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per process")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per process (median kept)")
    parser.add_argument("--rounds", type=int, default=1, help="processes per case, interleaved (median kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench.jsonl"), help="JSON-lines output")
    parser.add_argument("--plot", type=Path, default=None, help="also write a log-log scaling plot (PNG)")
    return parser


def cases_of(args: argparse.Namespace) -> list[BenchCase]:
    """Every combination of the parsed arguments' models, token counts, batches, modes and paths, one case each
    (raises ValueError for an invalid one)."""
    return [
        BenchCase(
            model=model,
            tokens=tokens,
            options=args.options,
            batch=batch,
            mode=mode,
            precision=args.precision,
            attn=attn,
            compile=args.compile,
            grad_checkpointing=args.grad_checkpointing,
            channels_last=args.channels_last,
            warmup=args.warmup,
            repeats=args.repeats,
            device=args.device,
        )
        for model, tokens, batch, mode, attn in itertools.product(
            args.model, args.tokens, args.batch, args.mode, args.attn
        )
    ]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        cases = cases_of(args)
    except ValueError as error:
        print(f"bixt bench: {error}")
        return 2
    records = run_suite(cases, rounds=args.rounds)
    write_jsonl(records, args.out)
    print(f"wrote {len(records)} records to {args.out}")
    if args.plot is not None:
        plot_scaling(records, args.plot)
        print(f"wrote {args.plot}")
    return 0 if all("error" not in rec for rec in records) else 1
