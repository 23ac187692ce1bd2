"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, say how to resume, exit non-zero.

:class:`StopRequests` turns the first SIGINT / SIGTERM into a request the run reads at the next optimizer-step
boundary; a second one exits at once (status 128 + signal), for a user who does not want to wait. Handlers can only
be installed from the main thread; elsewhere (a run started from a worker thread) signals keep their default
behaviour.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint; ``resume_command`` continues it."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, resume_command: str) -> None:
        super().__init__(signum, step)
        self.signum, self.step, self.checkpoint, self.resume_command = signum, step, checkpoint, resume_command

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        saved = f"checkpoint {self.checkpoint}" if self.checkpoint else "no checkpoint (none was needed yet)"
        return f"stopped by {name} after step {self.step}; {saved}\nresume with: {self.resume_command}"


class StopRequests:
    """Context manager: while active, SIGINT / SIGTERM set :attr:`signum` instead of killing the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            print(f"\n{signal.Signals(signum).name} again: exiting now, without a checkpoint", file=sys.stderr)
            os._exit(128 + signum)
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: stopping after this step and writing a checkpoint "
            "(again to exit at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
