"""The error hierarchy of edgeloop.

Every error we raise on purpose derives from :class:`EdgeloopError`. Errors carry
three things a person needs: *what* went wrong, *where* (a file, a topic, a field)
and *how to fix it* (``hint``). Third-party errors are wrapped at the boundary with
``raise ... from exc`` so callers only ever catch ours.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DevstackError",
    "EdgeloopError",
    "SchemaError",
    "TopicError",
]

from dataclasses import dataclass


class EdgeloopError(Exception):
    """Root of every error edgeloop raises on purpose.

    Args:
        message: What went wrong, in one sentence.
        where: The place it went wrong (file, topic, field, service).
        hint: What the reader can do about it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class TopicError(EdgeloopError):
    """An MQTT or Kafka topic name, or an id used inside one, is not valid."""


class SchemaError(EdgeloopError):
    """A payload does not match any message schema.

    Args:
        reason: A short, stable code for dashboards and the dead-letter queue:
            ``oversize``, ``not_json``, ``unknown_type``, ``invalid``.
        message: The human explanation, naming the failing fields.
    """

    def __init__(
        self, reason: str, message: str, *, where: str | None = None, hint: str | None = None
    ):
        super().__init__(message, where=where, hint=hint)
        self.reason = reason

    def __str__(self) -> str:
        return f"[{self.reason}] {super().__str__()}"


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config file: where it is and what to do."""

    path: str
    message: str
    line: int | None = None

    def render(self, file: str) -> str:
        """Format as ``file:line: path: message``."""
        loc = f"{file}:{self.line}" if self.line is not None else file
        return f"{loc}: {self.path or '<root>'}: {self.message}"


class ConfigError(EdgeloopError):
    """A config file is missing, unreadable or invalid; lists every problem found."""

    def __init__(self, file: str, problems: list[ConfigProblem], *, hint: str | None = None):
        self.file = file
        self.problems = problems
        lines = [p.render(file) for p in problems]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"invalid config ({count}):\n  " + "\n  ".join(lines),
            hint=hint or "fix the fields above; `--validate-config` re-checks without starting",
        )


class DevstackError(EdgeloopError):
    """A local service could not be installed, built, started or reached."""
