"""The command line as a newcomer meets it: help without torch's import, plain-text help, aligned model tables, and
`bixt train` without a recipe saying what to pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bixt
from bixt.cli import main as cli_main

# Runs a command in a fresh interpreter and reports whether it imported torch (the costly import: ~1.5 s).
_PROBE = """
import contextlib, io, sys
from bixt.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
print(out.getvalue())
"""


def _probe(*argv: str) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    verdict, _, text = done.stdout.partition("\n")
    return verdict == "TORCH", text


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["models", "--help"], ["train", "--help"], ["eval", "--help"], ["data", "--help"],
     ["data", "fetch", "--help"], ["study", "--help"], ["study", "run", "--help"], ["analyze", "--help"],
     ["export", "--help"], ["predict", "--help"]],
)  # fmt: skip
def test_help_needs_no_torch_and_is_plain_text(argv: list[str]) -> None:
    imported_torch, text = _probe(*argv)
    assert not imported_torch, f"bixt {' '.join(argv)} imported torch"
    assert "usage:" in text
    assert "``" not in text  # reStructuredText markup does not belong in a terminal


def test_bench_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["bench", "--help"])
    assert "``" not in capsys.readouterr().out


def test_lazy_package_names_and_submodules_resolve() -> None:
    code = (
        "import bixt, sys; assert 'torch' not in sys.modules; "
        "assert callable(bixt.create_model) and 'bixt_ti_l64_p16' in bixt.list_models(); "
        "assert bixt.layers.attention_paths.AUTO_EXPLICIT_MAX_SIMILARITY > 0; "
        "assert callable(bixt.data.collate.collate_padded) and callable(bixt.engine.fit); "
        "assert 'count_flops' in dir(bixt)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = bixt.no_such_name


def _columns(line: str) -> list[int]:
    """End positions of the whitespace-separated fields of a table row."""
    ends, inside = [], False
    for i, ch in enumerate(line + " "):
        if ch != " " and not inside:
            inside = True
        elif ch == " " and inside:
            inside = False
            ends.append(i)
    return ends


def test_models_table_is_aligned_and_states_task_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    # the longest name, a point cloud with a category, a pair of sequences and a single sequence
    assert cli_main(["models", "*_share_but_first"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].startswith("perceiver_ti_l64_p16_sa5_d8_share_but_first  ")
    assert rows[0].index("params") + len("params") == _columns(rows[1])[1]  # the count ends under its header

    assert cli_main(["models", "bixt_[lp]*[tgl]", "--flops"]) == 0  # bixt_lra_{text,retrieval}, bixt_points_partseg
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()
    by_name = {row.split()[0]: row for row in table[1:]}
    assert "4096 ids" in by_name["bixt_lra_text"]  # LRA Text's length, not the short example length
    assert "2x4096 ids" in by_name["bixt_lra_retrieval"]
    assert "1024x3 points + category" in by_name["bixt_points_partseg"]
    gflops_end = table[0].index("GFLOPs") + len("GFLOPs")
    for row in table[1:]:  # every number ends under its header
        assert row[gflops_end - 1] != " " and row[gflops_end] == " ", row
    assert "max_length" in out and "num_points" in out and "img_size" in out  # the note says what was costed


@pytest.mark.parametrize(("argv", "reason"), [([], "no recipe given"), (["-c"], "-c needs a recipe file")])
def test_train_without_a_recipe_says_what_to_pass(argv, reason, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert reason in err and "bixt train -c RECIPE.yaml" in err
    for recipe in ("fashion-mnist.yaml", "imagenet.yaml", "listops.yaml"):
        assert recipe in err
