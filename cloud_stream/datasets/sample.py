"""What the dataset records about one frame, and which frames it keeps."""

from __future__ import annotations

__all__ = ["Reason", "SampleMeta", "skip_reason"]

from typing import Literal

from pydantic import Field

from cloud_stream.datasets.config import DatasetConfig
from pipeline.schemas.base import (
    Label,
    MessageId,
    ModelRef,
    Probability,
    SafeId,
    StrictModel,
    TimestampNs,
)
from pipeline.schemas.frame import FrameMetaV1
from pipeline.schemas.verdict import VerdictV1

Reason = Literal["uncertain", "audit"]


class SampleMeta(StrictModel):
    """Metadata of one candidate sample: the frame, the edge decision and the teacher's."""

    frame_id: MessageId = Field(description="Id of the frame message; the sample's key")
    result_id: MessageId = Field(description="Id of the edge result the frame belongs to")
    verdict_id: MessageId | None = Field(default=None, description="Id of the teacher verdict")
    site: SafeId
    device: SafeId
    source: SafeId = Field(description="Camera name in the edge config")
    line: SafeId | None = None
    ts: TimestampNs = Field(description="Capture time of the frame, UTC ns")
    edge_model: ModelRef = Field(description="Edge model that decided")
    edge_label: Label
    edge_score: Probability
    teacher_model: ModelRef = Field(description="Teacher model that labelled the frame")
    teacher_label: Label
    teacher_score: Probability
    agree: bool = Field(description="Teacher label equals the edge label")
    reason: Reason = Field(description="Why the edge uploaded the frame")
    phash: str = Field(pattern=r"^[0-9a-f]{16}$", description="64-bit perceptual hash, hex")
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)

    @classmethod
    def from_verdict(cls, verdict: VerdictV1, frame: FrameMetaV1) -> SampleMeta:
        """Build the sample metadata of ``frame`` from the teacher's ``verdict`` on it."""
        return cls(
            frame_id=frame.id,
            result_id=frame.result_id,
            verdict_id=verdict.id,
            site=frame.site,
            device=frame.device,
            source=frame.source,
            line=frame.line,
            ts=frame.ts,
            edge_model=verdict.edge_model,
            edge_label=verdict.edge_label,
            edge_score=verdict.edge_score,
            teacher_model=verdict.teacher_model,
            teacher_label=verdict.teacher_label,
            teacher_score=verdict.teacher_score,
            agree=verdict.agree,
            reason=verdict.reason,
            phash=frame.phash,
            width=frame.width,
            height=frame.height,
        )


def skip_reason(meta: SampleMeta, config: DatasetConfig) -> str | None:
    """Why ``meta`` is not kept under ``config``, or None when it is kept.

    Returns one of ``uncertain_off``, ``disagreement_off``, ``agreement_off``,
    ``low_teacher_score``, ``unknown_label``: stable names for counters.
    """
    collect = config.collect
    if meta.reason == "uncertain":
        if not collect.uncertain:
            return "uncertain_off"
    elif not meta.agree and not collect.disagreements:
        return "disagreement_off"
    elif meta.agree and not collect.audit_agreements:
        return "agreement_off"
    if meta.teacher_score < config.min_teacher_score:
        return "low_teacher_score"
    if config.labels is not None and meta.teacher_label not in config.labels:
        return "unknown_label"
    return None
