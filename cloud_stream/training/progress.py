"""A dependency-free progress line on stderr for long training commands."""

from __future__ import annotations

__all__ = ["Progress"]

import sys
import time


class Progress:
    """``what: 120/900 (13%) 2.1s`` on stderr, redrawn in place on a terminal.

    Off a terminal (logs, CI) it writes a line at most every ``every_s`` seconds.
    """

    def __init__(self, total: int, what: str, *, every_s: float = 5.0) -> None:
        self.total = max(0, total)
        self.what = what
        self.count = 0
        self.every_s = every_s
        self._start = time.monotonic()
        self._last = time.monotonic()
        self._tty = sys.stderr.isatty()

    def step(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n``; ``note`` is appended, e.g. a running loss."""
        self.count += n
        now = time.monotonic()
        if self._tty:
            if now - self._last < 0.2 and self.count < self.total:
                return
        elif now - self._last < self.every_s or self.count >= self.total:
            return  # off a terminal, done() writes the last line
        self._last = now
        self._write(note)

    def _write(self, note: str, end: str = "") -> None:
        pct = 100.0 * self.count / self.total if self.total else 100.0
        line = (
            f"{self.what}: {self.count}/{self.total} ({pct:.0f}%) "
            f"{time.monotonic() - self._start:.1f}s {note}".rstrip()
        )
        if self._tty:
            sys.stderr.write("\r\033[K" + line + end)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, note: str = "") -> None:
        """Finish the line."""
        if self._tty:
            self._write(note, end="\n")
        elif self.total:
            self._write(note)
