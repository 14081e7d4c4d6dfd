"""Errors of the InfluxDB sink."""

from __future__ import annotations

__all__ = ["SinkAccessError", "SinkClosed", "SinkError"]

from pipeline.errors import EdgeloopError


class SinkError(EdgeloopError):
    """The sink could not write and retrying will not help."""


class SinkClosed(SinkError):  # noqa: N818 - a state, not a fault; the callers' name
    """``close()`` was called while a write was still waiting for InfluxDB."""


class SinkAccessError(SinkError):
    """InfluxDB refused the token, the organization or the bucket (401, 403, 404).

    Attributes:
        status: The HTTP status InfluxDB answered.
    """

    def __init__(self, message: str, *, status: int, where: str, hint: str):
        super().__init__(message, where=where, hint=hint)
        self.status = status
