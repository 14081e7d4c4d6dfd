"""``frame``: metadata of an uncertain or audit frame.

The frame itself travels as raw JPEG bytes; these fields ride along as MQTT v5
user properties and Kafka headers (see :mod:`pipeline.schemas.properties`).
"""

from __future__ import annotations

__all__ = ["FrameMetaV1"]

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
