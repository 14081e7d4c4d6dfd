"""Vision half of the edge bench: accuracy, INT8 speed-up, decisions, routes, bytes."""

from __future__ import annotations

__all__ = ["VisionFigures", "bench_vision"]

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge_node.messages import Origin, frame_decision
from edge_node.router import Router, RouterConfig
from edge_node.runtime import ImageClassifier
from edge_node.sources.base import Frame
from edge_node.sources.conveyor import ConveyorConfig, ConveyorSource, DriftStep
from pipeline.modelpkg import ClassifyThresholds, ModelPackage
from pipeline.schemas.codec import encode
from pipeline.schemas.properties import to_properties

#: The frame rate the bench pretends the camera runs at (drives the upload budget).
CAMERA_FPS = 10.0
SEED = 20261126  # not a training seed: the bench frames are held out


def frames(count: int, *, seed: int, condition: str | None = None, streams: int = 4) -> list[Frame]:
    """``count`` 640x480 frames from ``streams`` simulated cameras (seeds seed, seed+1, ...).

    Each simulated camera has its own belt, lighting and part mix, so several
    streams average out what one camera happens to look like.
    """
    drift = (DriftStep(condition=condition, after_frames=0),) if condition else ()
    out: list[Frame] = []
    for k in range(streams):
        n = count // streams + (1 if k < count % streams else 0)
        src = ConveyorSource(ConveyorConfig(name="bench", seed=seed + k, count=n, drift=drift))
        src.open()
        while not src.exhausted:
            item = src.read(timeout=1.0)
            if isinstance(item, Frame):
                out.append(item)
        src.close()
    return out


class _Clock:
    """A camera clock: each frame advances it by 1/fps (the router's budget reads it)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class VisionFigures:
    """What the vision loop measured."""

    n: int = 0
    int8_correct: int = 0
    fp32_correct: int = 0
    teacher_correct: int = 0
    combined_correct: int = 0
    agree: int = 0
    escalated: int = 0
    rechecked: int = 0
    oracle_correct: int = 0
    input_drift: int = 0
    uploaded: int = 0
    sent_bytes: int = 0
    jpeg_every_frame_bytes: int = 0
    int8_ms: list[float] = field(default_factory=list)
    fp32_ms: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    routes: dict[str, int] = field(default_factory=dict)


ORIGIN_SITE, ORIGIN_DEVICE, ORIGIN_SOURCE = "plant-a", "cam-01", "conveyor1"


def _sent_bytes(pkg: ModelPackage, frame: Frame, cls: Any, decision: Any, ms: float) -> int:
    """Bytes the node would send for this decision: the result, and the frame if uploaded.

    Built with the node's own message builders (:mod:`edge_node.messages`).
    """
    origin = Origin(ORIGIN_SITE, ORIGIN_DEVICE, ORIGIN_SOURCE, "line1", pkg.ref)
    seqs = iter(range(1_000_000, 1_000_002))
    result, upload = frame_decision(
        origin,
        next_seq=lambda: next(seqs),
        ts=frame.ts_ns,
        cls=cls,
        decision=decision,
        action=None,
        latency_ms=ms,
    )
    total = len(encode(result))
    if upload is not None:
        meta, jpeg = upload
        total += len(jpeg) + sum(len(k) + len(v) for k, v in to_properties(meta))
    return total


def bench_vision(
    items: list[Frame],
    int8: ImageClassifier,
    fp32: ImageClassifier,
    teacher: ImageClassifier,
    pkg: ModelPackage,
    router_config: RouterConfig,
    *,
    with_speed: bool = True,
) -> VisionFigures:
    """Run every frame through INT8 (timed decision path), FP32 and the teacher."""
    assert isinstance(pkg.manifest.thresholds, ClassifyThresholds)
    clock = _Clock()
    router = Router(router_config, pkg.manifest.thresholds, clock=clock)
    fig = VisionFigures()
    quality = [int(cv2.IMWRITE_JPEG_QUALITY), router_config.jpeg_quality]
    for frame in items:
        clock.t += 1.0 / CAMERA_FPS
        # The decision path, timed from frame in hand to routed decision.
        t0 = time.perf_counter_ns()
        cls = int8.classify(frame.image)
        decision = router.route("conveyor1", cls, frame.image)
        ms = (time.perf_counter_ns() - t0) / 1e6
        fig.decision_ms.append(ms)
        int8_ms = int8.last_inference_ms
        # Reference models on the same frame (outside the timed path).
        ref = fp32.classify(frame.image)
        teach = teacher.classify(frame.image)
        if with_speed:
            fig.int8_ms.append(int8_ms)
            fig.fp32_ms.append(fp32.last_inference_ms)
        fig.n += 1
        truth = frame.truth
        fig.int8_correct += cls.label == truth
        fig.fp32_correct += ref.label == truth
        fig.teacher_correct += teach.label == truth
        fig.agree += cls.label == ref.label
        escalated = decision.route == "uncertain"
        fig.escalated += escalated
        # The cloud can re-check only what was uploaded (the budget may skip some).
        rechecked = escalated and decision.upload
        fig.rechecked += rechecked
        fig.combined_correct += (teach.label if rechecked else cls.label) == truth
        fig.oracle_correct += (teach.label if escalated else cls.label) == truth
        if decision.reason == "input_drift":
            fig.input_drift += 1
        fig.routes[decision.route] = fig.routes.get(decision.route, 0) + 1
        if decision.upload:
            fig.uploaded += 1
        fig.sent_bytes += _sent_bytes(pkg, frame, cls, decision, ms)
        ok, buf = cv2.imencode(".jpg", frame.image, quality)
        fig.jpeg_every_frame_bytes += len(buf) if ok else 0
    return fig


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def median(values: list[float]) -> float:
    """The median, NaN when empty."""
    return statistics.median(values) if values else float("nan")
