"""Console progress: the bar only on a terminal; in a log, plain lines with loss, rate and ETA every N steps."""

from __future__ import annotations

import io
import re

import pytest

from bixt.engine.progress import EpochProgress, _clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(bar: io.StringIO, lines: io.StringIO, **overrides) -> None:
    """The second of three epochs of 10 steps, losses 1, 2, 3, ... from the first step run here."""
    options = dict(epoch=1, epochs=3, steps_per_epoch=10, initial=0, samples_per_step=32, enabled=True, every_steps=4)
    options.update(overrides)
    progress = EpochProgress(**options, bar_stream=bar, line_stream=lines)
    for i in range(10 - options["initial"]):
        progress.step(loss=1.0 + i, lr=1e-3)
    progress.close()


LINE = re.compile(
    r"epoch 2/3  step (\d+)/10 \(\d+%\)  loss ([\d.]+)  lr 1\.00e-03  [\d.]+ steps/s \(\d+ samples/s\)"
    r"  ETA epoch \d+:\d\d, run \d+:\d\d$"
)


def test_a_log_gets_a_line_every_n_steps_and_at_the_end_and_no_bar() -> None:
    bar, lines = io.StringIO(), io.StringIO()
    _run(bar, lines)
    assert bar.getvalue() == ""
    rows = lines.getvalue().splitlines()
    matches = [LINE.match(row) for row in rows]
    assert all(matches), rows
    assert [int(m[1]) for m in matches] == [4, 8, 10]
    # each line's loss is the mean over the steps since the previous line (losses 1, 2, ..., 10)
    assert [float(m[2]) for m in matches] == [2.5, 6.5, 9.5]
    assert "\r" not in lines.getvalue()


def test_a_terminal_gets_the_bar_and_no_lines_on_the_same_screen() -> None:
    bar, lines = Terminal(), Terminal()
    _run(bar, lines)
    assert "epoch 2/3" in bar.getvalue() and "\r" in bar.getvalue()
    assert lines.getvalue() == ""


def test_bar_on_the_terminal_and_lines_in_the_redirected_stdout() -> None:
    bar, lines = Terminal(), io.StringIO()  # `bixt train ... > log`
    _run(bar, lines)
    assert "\r" in bar.getvalue()
    assert len(lines.getvalue().splitlines()) == 3


def test_slow_steps_get_a_line_at_least_every_every_seconds() -> None:
    bar, lines = io.StringIO(), io.StringIO()
    _run(bar, lines, every_steps=1000, every_seconds=0.0)
    assert len(lines.getvalue().splitlines()) == 10


def test_resumed_epoch_counts_from_its_first_step_and_disabled_shows_nothing() -> None:
    bar, lines = io.StringIO(), io.StringIO()
    _run(bar, lines, initial=6)
    assert [int(LINE.match(r)[1]) for r in lines.getvalue().splitlines()] == [8, 10]
    bar, lines = Terminal(), io.StringIO()
    _run(bar, lines, enabled=False)
    assert bar.getvalue() == lines.getvalue() == ""


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0:00"), (75, "1:15"), (3725, "1:02:05")])
def test_clock(seconds: float, text: str) -> None:
    assert _clock(seconds) == text
