"""``verdict``: the cloud teacher's second opinion on an uploaded frame."""

from __future__ import annotations

__all__ = ["VerdictV1"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import Envelope, Label, MessageId, ModelRef, Probability, SafeId


class VerdictV1(Envelope):
    """Teacher label for one frame, beside the edge's decision."""

    type: Literal["verdict"] = "verdict"
    v: Literal[1] = 1
    frame_id: MessageId
    result_id: MessageId
    source: SafeId
    line: SafeId | None = None
    reason: Literal["uncertain", "audit"]
    edge_model: ModelRef
    edge_label: Label
    edge_score: Probability
    teacher_model: ModelRef
    teacher_label: Label
    teacher_score: Probability
    teacher_probs: dict[Label, Probability] = Field(max_length=256)
    agree: bool
    latency_ms: float = Field(ge=0, le=3_600_000, description="Teacher inference time")
