"""Logging set-up for entry points (library code only ever calls ``getLogger``)."""

from __future__ import annotations

__all__ = ["WarnLimiter", "configure_logging"]

import json
import logging
import sys
import time
from typing import Any

from pipeline.config.base import LoggingConfig

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(config: LoggingConfig) -> None:
    """Send logs to stderr as text or JSON lines, at the configured level."""
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # Client libraries are chatty at INFO; keep them to warnings unless debugging.
    if config.level != "DEBUG":
        for name in ("kafka", "aiokafka", "paho"):
            logging.getLogger(name).setLevel(logging.WARNING)


class WarnLimiter:
    """Log at most one warning per ``interval_s``; the next says how many were held back.

    For warnings about bad input that can arrive thousands of times a second
    (unreadable frames, invalid payloads): the first is logged at once, the
    rest are counted (they are also counted in metrics by the caller).
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 10.0, *, level: int = logging.WARNING
    ) -> None:
        self._logger = logger
        self._level = level
        self.interval_s = interval_s
        self._last = -interval_s
        self._suppressed = 0

    def warn(self, msg: str, *args: object) -> None:
        """Log ``msg % args`` (at ``level``) unless one was logged within ``interval_s``."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += " (%d similar warnings suppressed)"
            args = (*args, self._suppressed)
        self._last, self._suppressed = now, 0
        self._logger.log(self._level, msg, *args)
