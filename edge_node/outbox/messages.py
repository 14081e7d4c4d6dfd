"""What goes into the outbox and what comes out of it."""

from __future__ import annotations

__all__ = ["DROPPED", "ROW_OVERHEAD", "OutboxItem", "OutboxMessage"]

import json
from dataclasses import dataclass

from edge_node.outbox.errors import OutboxError
from edge_node.outbox.priorities import Priority
from pipeline.topics import Stream

#: Returned by ``Outbox.put`` for a message dropped because it could not fit.
DROPPED = 0
#: Bytes a row costs against the cap besides its payload and properties.
ROW_OVERHEAD = 64


@dataclass(frozen=True)
class OutboxItem:
    """One message to store, for ``Outbox.put_many``."""

    stream: Stream
    payload: bytes
    seq: int
    properties: dict[str, str] | None = None
    priority: Priority | None = None


@dataclass(frozen=True)
class OutboxMessage:
    """A stored message, as ``Outbox.pending`` returns it."""

    row_id: int
    seq: int
    stream: Stream
    priority: Priority
    payload: bytes
    properties: dict[str, str]
    created_ns: int


def encode_properties(properties: dict[str, str] | None) -> str | None:
    """Properties as stored: a JSON list of pairs (keeps their order), or None."""
    if not properties:
        return None
    for key, value in properties.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise OutboxError(
                f"property {key!r} must map a str to a str, got {type(value).__name__}",
                where="outbox.put",
                hint="flatten metadata with pipeline.schemas.properties.to_properties",
            )
    return json.dumps(list(properties.items()), separators=(",", ":"))


def decode_properties(text: str | None) -> dict[str, str]:
    """The inverse of :func:`encode_properties`."""
    return {} if not text else {str(k): str(v) for k, v in json.loads(text)}
