"""``frame``: metadata of an uncertain or audit frame.

The frame itself travels as raw JPEG bytes; these fields ride along as MQTT v5
user properties and Kafka headers (see :mod:`pipeline.schemas.properties`).
"""

from __future__ import annotations

__all__ = ["MAX_FRAME_BYTES", "FrameMetaV1", "jpeg_problem"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import Envelope, Label, MessageId, ModelRef, Probability, SafeId

MAX_FRAME_BYTES = 4 * 1024 * 1024


class FrameMetaV1(Envelope):
    """Metadata of one uploaded frame; ``id`` is the frame id the result points to."""

    type: Literal["frame"] = "frame"
    v: Literal[1] = 1
    model: ModelRef
    source: SafeId
    line: SafeId | None = None
    result_id: MessageId = Field(description="Id of the result this frame belongs to")
    reason: Literal["uncertain", "audit"] = Field(description="Why the edge uploaded it")
    label: Label = Field(description="Edge top-1 label")
    score: Probability = Field(description="Edge top-1 probability")
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)
    encoding: Literal["jpeg"] = "jpeg"
    size: int = Field(ge=1, le=MAX_FRAME_BYTES, description="Bytes of the encoded frame")
    phash: str = Field(pattern=r"^[0-9a-f]{16}$", description="64-bit perceptual hash, hex")


def jpeg_problem(meta: FrameMetaV1, payload: bytes) -> str | None:
    """Why ``payload`` cannot be the JPEG ``meta`` announces, or None if it can.

    Cheap checks only (markers and size; decoding is the consumer's job), shared by
    the bridge and the workers so a frame is judged the same on both sides.
    """
    if not (payload.startswith(b"\xff\xd8") and payload.rstrip(b"\x00").endswith(b"\xff\xd9")):
        return "payload is not a complete JPEG (no SOI/EOI markers)"
    if meta.size != len(payload):
        return f"metadata says {meta.size} bytes, payload has {len(payload)}"
    return None
