"""Progress and messages on stderr that stay readable on a terminal and in a log file.

On a terminal a tqdm bar runs, and every message (our error lines and the library's log records) is written above it
with the bar cleared first, so no message lands inside the bar. On a pipe or file a bar is a stream of carriage
returns that a log viewer shows as one long line with the messages inside it; there, progress is whole lines
instead (at most one every `interval` seconds, and the last), and messages are plain lines between them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TextIO


class Progress:
    """A progress display over `total` items (None when unknown) for a batch command.

    Use as a context manager: inside it, log records from the library are written as whole lines too.

    Args:
        total: items expected, or None.
        unit: what an item is ("img", "frame").
        desc: the label in front.
        interval: on a pipe or file, the least seconds between two progress lines.
        stream: where to write (stderr).
        leave: on a terminal, keep the finished bar on screen.
    """

    def __init__(self, total: int | None, unit: str, desc: str, interval: float = 30.0,
                 stream: TextIO | None = None, leave: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.unit = unit
        self.desc = desc
        self.interval = interval
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last_line = -float("inf")
        self._redirect = contextlib.ExitStack()
        isatty = getattr(self.stream, "isatty", None)
        self.bar = None
        if isatty is not None and isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, file=self.stream, dynamic_ncols=True, leave=leave)

    def __enter__(self) -> Progress:
        if self.bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect.enter_context(logging_redirect_tqdm([logging.getLogger()]))
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """`n` more items done; `postfix` (e.g. the file name) is shown after the count."""
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self.bar is not None:
            if postfix is not None:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval or (self.total is not None and self.n >= self.total):
            self._last_line = now
            self._print(self._line(now))

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = f", {self.n / elapsed:.2f} {self.unit}/s" if elapsed > 0 and self.n else ""
        tail = f" ({self.postfix})" if self.postfix else ""
        return f"{self.desc}: {count} {self.unit}{rate}{tail}"

    def write(self, line: str) -> None:
        """A message on a line of its own (above the bar on a terminal)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self._print(line)

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self._redirect.close()
