"""Building the ``verdict`` message for one frame from the teacher's opinion."""

from __future__ import annotations

__all__ = ["SCORE_DECIMALS", "build_verdict", "verdict_id"]

import hashlib
from collections.abc import Mapping

from pipeline.schemas.base import ModelRef
from pipeline.schemas.frame import FrameMetaV1
from pipeline.schemas.verdict import VerdictV1

#: Decimals of the teacher's scores and probabilities; the edge rounds its own alike.
SCORE_DECIMALS = 5


def verdict_id(frame_id: str, teacher_sha256: str) -> str:
    """The verdict's id: a digest of the frame id and the teacher's model file.

    A replayed frame judged by the same teacher gets the same id (consumers
    deduplicate on it); another teacher's verdict on that frame gets another.
    """
    digest = hashlib.sha256(f"verdict/1\0{frame_id}\0{teacher_sha256}".encode())
    return digest.hexdigest()[:32]


def _prob(value: float) -> float:
    return round(min(1.0, max(0.0, float(value))), SCORE_DECIMALS)


def build_verdict(
    meta: FrameMetaV1,
    teacher_ref: ModelRef,
    label: str,
    score: float,
    probs: Mapping[str, float],
    latency_ms: float,
) -> VerdictV1:
    """The verdict on the frame ``meta`` describes.

    Deterministic but for ``latency_ms``: the id comes from the frame id and the
    teacher (:func:`verdict_id`); site, device, seq and ts are the frame's (ts is
    the capture time, so a replay lands on the same points downstream).

    Args:
        meta: The frame's metadata (edge model, label, score, reason, ...).
        teacher_ref: The teacher that judged it.
        label: Teacher top-1 label.
        score: Teacher top-1 probability.
        probs: Teacher probability of every label.
        latency_ms: Teacher time for this frame (its micro-batch's, or the share of it).

    Raises:
        pydantic.ValidationError: a field is out of its range (e.g. a label that is
            not a valid label).
    """
    return VerdictV1(
        id=verdict_id(meta.id, teacher_ref.sha256),
        site=meta.site,
        device=meta.device,
        seq=meta.seq,
        ts=meta.ts,
        frame_id=meta.id,
        result_id=meta.result_id,
        source=meta.source,
        line=meta.line,
        reason=meta.reason,
        edge_model=meta.model,
        edge_label=meta.label,
        edge_score=meta.score,
        teacher_model=teacher_ref,
        teacher_label=label,
        teacher_score=_prob(score),
        teacher_probs={str(k): _prob(v) for k, v in probs.items()},
        agree=label == meta.label,
        latency_ms=round(min(3_600_000.0, max(0.0, float(latency_ms))), 3),
    )
