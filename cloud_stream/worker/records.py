"""Kafka records in and out of the workers: checked decoding and dead letters.

Records are external input even though the bridge validated them once: anything
can produce to a topic. JSON streams are decoded with :func:`pipeline.schemas.decode`
(size, JSON, schema); frames are rebuilt from their headers and must be a
complete JPEG of the announced size. Whatever fails becomes a dead letter with
the original bytes and the reason, and processing goes on.
"""

from __future__ import annotations

__all__ = ["DeadLetterRecord", "Record", "dead_letter", "decode_frame", "decode_json"]

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import SchemaError
from pipeline.schemas import DeadLetterMetaV1, FrameMetaV1, decode, from_properties, now_ns
from pipeline.schemas.base import StrictModel
from pipeline.schemas.dlq import DlqReason, dlq_headers
from pipeline.schemas.frame import MAX_FRAME_BYTES, jpeg_problem

Headers = Sequence[tuple[str, bytes]]

#: Headers the bridge adds that are not frame metadata fields.
_TRACE = frozenset({"content-type", "mqtt.topic", "edge.ts", "bridge.ts"})


@dataclass(frozen=True)
class Record:
    """One Kafka record as the workers see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()

    @property
    def where(self) -> str:
        """``topic[partition]@offset``, for errors and dead letters."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class DeadLetterRecord:
    """What to produce to the DLQ topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: DlqReason


def decode_json(record: Record, *, expect: type[StrictModel] | None = None) -> StrictModel:
    """Decode and validate a JSON record; ``expect`` also checks its message type.

    Raises:
        SchemaError: with a stable ``reason`` (oversize, not_json, unknown_type, invalid).
    """
    if record.value is None:
        raise SchemaError("invalid", "record has no value (a tombstone?)", where=record.where)
    msg = decode(record.value, where=record.where, expect=expect)
    if expect is not None and not isinstance(msg, expect):
        raise SchemaError(
            "invalid",
            f"a {msg.type!r} message on {record.topic!r}, which carries "
            f"{expect.model_fields['type'].default!r} messages",
            where=record.where,
        )
    return msg


def decode_frame(record: Record) -> FrameMetaV1:
    """The metadata of a frame record, checked against its JPEG bytes.

    Raises:
        SchemaError: ``invalid``/``unknown_type`` for bad metadata, ``oversize`` or
            ``corrupt_frame`` for bytes that cannot be the announced JPEG.
    """
    value = record.value or b""
    if len(value) > MAX_FRAME_BYTES:
        raise SchemaError(
            "oversize", f"frame of {len(value)} bytes exceeds {MAX_FRAME_BYTES}", where=record.where
        )
    pairs = [(k, v) for k, v in record.headers if k not in _TRACE]
    meta = from_properties(pairs, where=record.where)
    if not isinstance(meta, FrameMetaV1):
        raise SchemaError(
            "invalid",
            f"headers describe a {getattr(meta, 'type', '?')!r} message, not a frame",
            where=record.where,
        )
    corrupt = jpeg_problem(meta, value)
    if corrupt:
        raise SchemaError("corrupt_frame", corrupt, where=record.where)
    return meta


def dead_letter(
    record: Record, reason: DlqReason, detail: str, *, component: str
) -> DeadLetterRecord:
    """The DLQ record for ``record``: original key and bytes, the reason in headers."""
    meta = DeadLetterMetaV1(
        reason=reason,
        detail=detail[:4096],
        source=record.where[:1024],
        component=component[:128],
        received_ts=now_ns(),
        size=len(record.value or b""),
    )
    return DeadLetterRecord(
        key=record.key or b"unknown",
        value=record.value or b"",
        headers=dlq_headers(meta),
        reason=reason,
    )
