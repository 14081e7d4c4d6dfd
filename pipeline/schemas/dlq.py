"""Dead letters: what the bridge and workers record about input they rejected.

The record value on ``edgeloop.dlq`` is the original payload, byte for byte;
this metadata travels in the record headers (``dlq.*``).
"""

from __future__ import annotations

__all__ = ["DeadLetterMetaV1", "DlqReason", "dlq_headers"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import StrictModel, TimestampNs

DlqReason = Literal[
    "oversize",
    "not_json",
    "unknown_type",
    "invalid",
    "unknown_stream",
    "bad_topic",
    "corrupt_frame",
    "processing_error",
]


class DeadLetterMetaV1(StrictModel):
    """Why a payload was rejected, where it came from and who rejected it."""

    type: Literal["dead_letter"] = "dead_letter"
    v: Literal[1] = 1
    reason: DlqReason
    detail: str = Field(max_length=4096, description="Human explanation with field paths")
    source: str = Field(max_length=1024, description="Source MQTT topic or Kafka topic")
    component: str = Field(max_length=128, description="Who rejected it, e.g. bridge-1")
    received_ts: TimestampNs
    size: int = Field(ge=0, description="Bytes of the original payload")
    kept: int | None = Field(
        default=None,
        ge=0,
        description="Bytes of the payload kept in the record, when it was too large for "
        "Kafka and only its start is kept (absent: the record holds all of it)",
    )


def dlq_headers(meta: DeadLetterMetaV1) -> list[tuple[str, bytes]]:
    """The record headers of a dead letter: every metadata field as ``dlq.<name>``."""
    return [(f"dlq.{k}", str(v).encode()) for k, v in meta.model_dump().items() if v is not None]
