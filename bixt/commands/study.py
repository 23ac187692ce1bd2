"""``bixt study run NAME [--quick] [--seeds ...] [--cells ...] [--jobs N]`` and ``bixt study report NAME``.

A study is a grid of `bixt train` runs declared in configs/studies/NAME.yaml (run from the repository root).
``run`` trains every unfinished cell and seed (rerunning it resumes; finished cells are kept); ``report`` collects
the finished runs into results/NAME/ (results.jsonl, README.md with tables, plots).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bixt.commands import help_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bixt study", description=help_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="train every unfinished cell of a study (resumable)")
    report = sub.add_parser("report", help="collect a study's finished runs into tables and plots")
    for p in (run, report):
        p.add_argument("study", help="a study name (configs/studies/NAME.yaml) or a study file")
        p.add_argument("--quick", action="store_true", help="a few steps on a few items per cell (tests)")
        p.add_argument("--root", type=Path, help="where runs live (default runs/studies, quick: runs/studies-quick)")
    run.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: the study's; quick: its first)")
    run.add_argument("--cells", nargs="+", help="cells to run (default: all)")
    run.add_argument("--jobs", type=int, default=1, help="cells trained at once; the cores are split between them")
    run.add_argument("--threads", type=int, help="threads per cell (default: cores / jobs)")
    report.add_argument("--out", type=Path, help="output folder (default results/NAME, quick: under the root)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from bixt.studies.runner import DEFAULT_ROOT, QUICK_ROOT
    from bixt.studies.spec import StudyError, load_study

    root = args.root or (QUICK_ROOT if args.quick else DEFAULT_ROOT)
    try:
        study = load_study(args.study)
        if args.action == "run":
            from bixt.studies.runner import run_study

            outcome = run_study(
                study,
                root=root,
                quick=args.quick,
                seeds=tuple(args.seeds) if args.seeds else None,
                cells=tuple(args.cells) if args.cells else None,
                jobs=args.jobs,
                threads=args.threads,
                echo=lambda line: print(line, flush=True),
            )
            from bixt.studies.evaluations import run_evaluations

            # one at a time after the training runs, on all the cores those used
            eval_threads = args.threads * args.jobs if args.threads else os.cpu_count() or 1
            failed = run_evaluations(
                study, outcome, quick=args.quick, threads=eval_threads, echo=lambda line: print(line, flush=True)
            )
            unfinished = [f"{run.cell}/seed-{run.seed}" for run, record in outcome if record.status != "finished"]
            if unfinished or failed:
                names = ", ".join([*unfinished, *failed])
                print(f"not finished: {names} (see their .log files; rerun to retry)", file=sys.stderr)
                return 1
            return 0
        from bixt.studies.report import write_report

        out = args.out or (root / study.name / "results" if args.quick else Path("results") / study.name)
        written = write_report(study, root=root, out=out, quick=args.quick)
        for path in written:
            print(path)
        return 0
    except StudyError as error:
        print(f"bixt study: {error}", file=sys.stderr)
        return 2
