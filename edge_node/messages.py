"""The messages a decision produces, built in one place (the node and its bench share them)."""

from __future__ import annotations

__all__ = ["Origin", "anomaly_result", "classify_result", "frame_decision", "frame_meta"]

from collections.abc import Callable
from dataclasses import dataclass

from edge_node.router import RouteDecision
from edge_node.runtime import AnomalyWindow, Classification
from pipeline.schemas import AnomalySummary, FrameMetaV1, ModelRef, ResultV1, new_id


@dataclass(frozen=True)
class Origin:
    """Where a decision was made: device, source and the model that made it."""

    site: str
    device: str
    source: str
    line: str | None
    model: ModelRef


def classify_result(
    origin: Origin,
    *,
    result_id: str,
    seq: int,
    ts: int,
    cls: Classification,
    decision: RouteDecision,
    frame_id: str | None,
    action: str | None,
    latency_ms: float,
) -> ResultV1:
    """The result of one image decision.

    Confident results stay small (no probability vector); the cloud needs the
    full distribution only where it re-checks. Floats are rounded to what they
    mean, since every byte is sent once per frame.
    """
    confident = decision.route == "confident"
    return ResultV1(
        id=result_id,
        site=origin.site,
        device=origin.device,
        seq=seq,
        ts=ts,
        model=origin.model,
        task="classify",
        source=origin.source,
        line=origin.line,
        label=cls.label,
        score=round(cls.score, 5),
        margin=round(cls.margin, 5),
        entropy=round(cls.entropy, 5),
        probs=None if confident else {k: round(v, 5) for k, v in cls.prob_dict().items()},
        route=decision.route,
        frame_id=frame_id,
        action=action,
        latency_ms=round(max(latency_ms, 0.0), 3),
    )


def frame_meta(
    origin: Origin,
    *,
    frame_id: str,
    seq: int,
    ts: int,
    result_id: str,
    cls: Classification,
    decision: RouteDecision,
    jpeg: bytes,
) -> FrameMetaV1:
    """Metadata of an uploaded frame (it travels as MQTT user properties)."""
    return FrameMetaV1(
        id=frame_id,
        site=origin.site,
        device=origin.device,
        seq=seq,
        ts=ts,
        model=origin.model,
        source=origin.source,
        line=origin.line,
        result_id=result_id,
        reason="audit" if decision.route == "audit" else "uncertain",
        label=cls.label,
        score=round(cls.score, 5),
        width=decision.width,
        height=decision.height,
        size=len(jpeg),
        phash=decision.phash or "0" * 16,
    )


def frame_decision(
    origin: Origin,
    *,
    next_seq: Callable[[], int],
    ts: int,
    cls: Classification,
    decision: RouteDecision,
    action: str | None,
    latency_ms: float,
) -> tuple[ResultV1, tuple[FrameMetaV1, bytes] | None]:
    """The result of an image decision and, when the router uploads the frame, its metadata
    and JPEG. ``next_seq`` is called once per message, result first."""
    result_id = new_id()
    jpeg = decision.jpeg if decision.upload else None
    frame_id = new_id() if jpeg is not None else None
    result = classify_result(
        origin,
        result_id=result_id,
        seq=next_seq(),
        ts=ts,
        cls=cls,
        decision=decision,
        frame_id=frame_id,
        action=action,
        latency_ms=latency_ms,
    )
    if frame_id is None or jpeg is None:
        return result, None
    meta = frame_meta(
        origin,
        frame_id=frame_id,
        seq=next_seq(),
        ts=ts,
        result_id=result_id,
        cls=cls,
        decision=decision,
        jpeg=jpeg,
    )
    return result, (meta, jpeg)


def anomaly_result(
    origin: Origin,
    *,
    result_id: str,
    seq: int,
    window: AnomalyWindow,
    score: float,
    active: bool,
    action: str | None,
    latency_ms: float,
    window_s: float,
    threshold: float,
) -> ResultV1:
    """The result of one scored sensor window."""
    return ResultV1(
        id=result_id,
        site=origin.site,
        device=origin.device,
        seq=seq,
        ts=window.ts_ns,
        model=origin.model,
        task="anomaly",
        source=origin.source,
        line=origin.line,
        label="anomaly" if active else "normal",
        score=round(score, 5),
        route="anomalous" if active else "normal",
        action=action,
        latency_ms=round(max(latency_ms, 0.0), 3),
        anomaly=AnomalySummary(
            window_s=window_s,
            threshold=threshold,
            features={k: round(v, 5) for k, v in window.features.items()},
        ),
    )
