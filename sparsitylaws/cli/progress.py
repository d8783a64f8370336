"""Progress of long fits on stderr, so a command that runs for minutes is never silent.

:class:`FitProgress` is the ``progress(what, done, total)`` hook of
:func:`sparsitylaws.lawset.build.fit_table`.  It says nothing for the first
:data:`QUIET_SECONDS` (a quick fit stays quiet); after that, on a terminal it keeps one line
up to date, and in a log or pipe it writes a line at most every :data:`LOG_EVERY` seconds.
stdout (the result) is never touched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["LOG_EVERY", "QUIET_SECONDS", "FitProgress"]

#: Seconds before the first progress report.
QUIET_SECONDS = 3.0
#: Seconds between two progress lines when stderr is not a terminal.
LOG_EVERY = 10.0


class FitProgress:
    """``progress(what, done, total)`` for fit_table; call :meth:`close` when the fit ends."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 label: str = "fit") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.label = label
        self.start = clock()
        self.last: float | None = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.open_line = False

    def __call__(self, what: str, done: int, total: int) -> None:
        now = self.clock()
        elapsed = now - self.start
        if elapsed < QUIET_SECONDS:
            return
        if not self.tty and self.last is not None and now - self.last < LOG_EVERY:
            return
        self.last = now
        text = f"{self.label}: {done}/{total} runs fitted, {elapsed:.0f} s; now {what}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.open_line = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the progress line (terminal) so the result starts on a clean line."""
        if self.open_line:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.open_line = False
