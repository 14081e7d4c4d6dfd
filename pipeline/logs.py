"""Logging set-up for entry points (library code only ever calls ``getLogger``)."""

from __future__ import annotations

__all__ = ["configure_logging"]

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
