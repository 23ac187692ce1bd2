"""Training progress on the console: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns; written into a file (``make main > log``, CI output) that is one line of
hundreds of kilobytes per epoch. So the bar is drawn only when its stream (stderr) is a terminal, and unless
stdout is that same screen, a plain line goes to stdout every ``every_steps`` optimizer steps or ``every_seconds``
seconds, whichever comes first, and at the end of the epoch:

    epoch 3/10  step 150/234 (64%)  loss 0.4123  lr 3.21e-03  5.3 steps/s (1357 samples/s)  ETA epoch 0:16, run 5:46

The run's ETA counts training steps only (evaluations come on top). The loss is this process's (rank 0's); the
metrics log has the mean over processes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

EVERY_SECONDS = 60.0  # a slow run (big model, CPU) still shows a line at least this often


def _clock(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochProgress:
    """One epoch's progress; ``step(loss, lr)`` after every optimizer step, ``close()`` at the end of the epoch.

    ``epoch`` counts from 0; ``initial`` steps of the epoch are already done (a resumed run). ``enabled=False``
    (rank > 0, or ``progress: false``) shows nothing. The streams are parameters so that tests can pass files.
    """

    def __init__(
        self,
        *,
        epoch: int,
        epochs: int,
        steps_per_epoch: int,
        initial: int,
        samples_per_step: int,
        enabled: bool,
        every_steps: int,
        every_seconds: float = EVERY_SECONDS,
        bar_stream: TextIO | None = None,
        line_stream: TextIO | None = None,
    ) -> None:
        bar_stream = sys.stderr if bar_stream is None else bar_stream
        self.lines = line_stream if line_stream is not None else sys.stdout
        self.epoch, self.epochs, self.total, self.done = epoch, epochs, steps_per_epoch, initial
        self.samples_per_step, self.every_steps, self.every_seconds = samples_per_step, every_steps, every_seconds
        use_bar = enabled and bar_stream.isatty()
        # Lines when no terminal shows the bar on stdout's screen (both streams on one terminal: the bar alone).
        self.write_lines = enabled and not (use_bar and self.lines.isatty())
        self.bar = tqdm(
            total=steps_per_epoch,
            initial=initial,
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="step",
            file=bar_stream,
            disable=not use_bar,
            dynamic_ncols=True,
        )
        self.window_loss, self.window_steps = 0.0, 0
        self.window_start = self.epoch_start = time.monotonic()
        self.epoch_start_step = initial
        self.lr = 0.0

    def step(self, loss: float, lr: float) -> None:
        self.done += 1
        self.window_loss, self.window_steps, self.lr = self.window_loss + loss, self.window_steps + 1, lr
        self.bar.set_postfix(loss=f"{self.window_loss / self.window_steps:.4f}", lr=f"{lr:.2e}", refresh=False)
        self.bar.update(1)
        due = self.done % self.every_steps == 0 or time.monotonic() - self.window_start >= self.every_seconds
        if self.write_lines and (due or self.done == self.total):
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        rate = self.window_steps / max(now - self.window_start, 1e-9)
        # The ETA uses the epoch's mean rate so far, steadier than the last window's.
        mean_rate = (self.done - self.epoch_start_step) / max(now - self.epoch_start, 1e-9)
        left_epoch = self.total - self.done
        left_run = left_epoch + (self.epochs - self.epoch - 1) * self.total
        print(
            f"epoch {self.epoch + 1}/{self.epochs}  step {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)"
            f"  loss {self.window_loss / self.window_steps:.4f}  lr {self.lr:.2e}"
            f"  {rate:.1f} steps/s ({rate * self.samples_per_step:.0f} samples/s)"
            f"  ETA epoch {_clock(left_epoch / mean_rate)}, run {_clock(left_run / mean_rate)}",
            file=self.lines,
            flush=True,
        )
        self.window_loss, self.window_steps, self.window_start = 0.0, 0, now

    def close(self) -> None:
        self.bar.close()
