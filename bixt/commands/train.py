"""``bixt train -c RECIPE.yaml [--section.key VALUE ...]``: train and evaluate, then say where everything went.

Under ``torchrun --nproc_per_node=N -m bixt train ...`` every process runs this; rank 0 alone prints and writes.
A recipe whose ``processes`` comes to more than one is launched that way here (`bixt.engine.launch`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bixt.engine.config import ConfigError


def _recipe_name(argv: list[str]) -> str | None:
    for flag in ("-c", "--config"):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return Path(argv[argv.index(flag) + 1]).stem
    return None


def main(argv: list[str]) -> int:
    if not argv or argv[-1] in ("-c", "--config"):
        from bixt.commands.recipes import what_to_pass

        print(what_to_pass("-c needs a recipe file" if argv else "no recipe given"), file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv):
        from bixt.engine.config import print_help

        print_help()
        return 0
    # The engine and the plots are imported only for a real run: `bixt train --help` must not import torch.
    from bixt.analysis.plots import plot_run_curve
    from bixt.engine.distributed import env_info, shutdown_distributed
    from bixt.engine.interrupt import TrainingInterrupted
    from bixt.engine.launch import launch_processes, plan_processes, under_torchrun
    from bixt.engine.resume import parse_train_args
    from bixt.engine.run import RunFinishedError, fit
    from bixt.engine.tasks import BatchError
    from bixt.engine.train import NonFiniteLossError

    try:
        config = parse_train_args(argv)
        if not under_torchrun():
            processes = plan_processes(config)
            if processes.processes > 1 or processes.requested == "auto":
                print(processes.describe(), flush=True)
            if processes.processes > 1:
                return launch_processes(processes, argv, set_threads=config.threads is None)
        result = fit(config, name_hint=_recipe_name(argv), learning_curve=plot_run_curve)
    except RunFinishedError as error:
        print(f"bixt train: {error}", file=sys.stderr)
        return 0
    except ConfigError as error:
        print(f"bixt train: {error}", file=sys.stderr)
        return 2
    except (NonFiniteLossError, BatchError) as error:  # the data went wrong during training
        print(f"bixt train: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(f"bixt train: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # before training started: nothing was written, or a run with no checkpoint yet
        print("bixt train: interrupted before training started", file=sys.stderr)
        return 130
    finally:
        shutdown_distributed()
    if env_info().is_main:
        # Absolute paths, resolved (the "last" link and relative output dirs would otherwise print differently).
        print(f"\nrun directory:   {result.run_dir.resolve()}")
        for label, path in (
            ("best checkpoint", result.best_checkpoint),
            ("last checkpoint", result.last_checkpoint),
            ("metrics", result.metrics_path),
            ("learning curve", result.plot_path),
        ):
            print(f"{label + ':':<17}{path.resolve() if path is not None else '-'}")
        print("final evaluation: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    return 0
