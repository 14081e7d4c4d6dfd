"""Priority classes of outbox messages and the eviction rule they follow.

When the outbox is full, rows leave in this order: frames first, then
telemetry, then results, then alerts (anomalous results, OTA reports). Status
rows are never evicted: they are small, rare, and the cloud's only view of
whether a device is alive.
"""

from __future__ import annotations

__all__ = ["Priority", "default_priority"]

from enum import IntEnum

from edge_node.outbox.errors import OutboxError
from pipeline.topics import Stream


class Priority(IntEnum):
    """How much a message is worth keeping; a lower value is evicted first."""

    FRAME = 0
    TELEMETRY = 1
    RESULT = 2
    ALERT = 3
    STATUS = 4

    @property
    def label(self) -> str:
        """Lower-case class name, used as the key of eviction counters."""
        return self.name.lower()

    @property
    def evictable(self) -> bool:
        """Whether rows of this class may be evicted to make room."""
        return self is not Priority.STATUS


_BY_STREAM: dict[Stream, Priority] = {
    Stream.FRAME: Priority.FRAME,
    Stream.TELEMETRY: Priority.TELEMETRY,
    Stream.RESULT: Priority.RESULT,
    Stream.OTA_REPORT: Priority.ALERT,
    Stream.STATUS: Priority.STATUS,
}


def default_priority(stream: Stream) -> Priority:
    """The priority a message of ``stream`` gets unless the caller says otherwise.

    An anomalous result is a result stream message that the caller puts with
    :attr:`Priority.ALERT`.

    Raises:
        OutboxError: for streams a device never publishes (``ota`` offers).
    """
    try:
        return _BY_STREAM[stream]
    except KeyError:
        raise OutboxError(
            f"stream {stream.value!r} is not published by a device",
            where="outbox",
            hint=f"use one of {[s.value for s in _BY_STREAM]}",
        ) from None
