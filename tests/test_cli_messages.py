"""`bixt train --help` describes every key under readable group titles; negative numbers work as values."""

from __future__ import annotations

import pytest

from bixt.cli import main as cli_main
from bixt.engine.config import parse_config, valid_keys


def test_help_describes_every_key_with_readable_group_titles(capsys):
    assert cli_main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare with whitespace collapsed
    text = text.split("Show this help message and exit.", 1)[1]  # the key descriptions, past the usage lines
    assert "<class" not in text
    for title in ("model: which registered model", "data: the data set", "optim: the optimizer", "schedule: epochs"):
        assert title in text
    for key in valid_keys():
        # A described key reads "--KEY METAVAR description (type: ..." rather than "--KEY METAVAR (type: ...".
        after = text.split(f"--{key} ", 1)[1].split("--", 1)[0]
        metavar_and_help = after.split("(type:", 1)[0].split(maxsplit=1)
        assert len(metavar_and_help) == 2 and len(metavar_and_help[1]) > 8, f"--{key} has no description: {after!r}"


@pytest.mark.parametrize(
    ("argv", "read"),
    [
        (["--optim.lr", "-1e-3"], lambda c: c.optim.lr == -1e-3),
        (["--optim.lr", "-.5"], lambda c: c.optim.lr == -0.5),
        (["--schedule.warmup_lr", "-1"], lambda c: c.schedule.warmup_lr == -1.0),
        (["--seed", "-7"], lambda c: c.seed == -7),
        (["--augment.mean", "[-0.5]"], lambda c: c.augment.mean == (-0.5,)),
    ],
)
def test_a_negative_number_works_as_a_value(argv, read):
    assert read(parse_config(argv))
