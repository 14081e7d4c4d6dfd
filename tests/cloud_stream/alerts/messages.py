"""Message builders and a JSON-backed state table for the alert and drift tests."""

from __future__ import annotations

import json
from typing import Any

from cloud_stream.alerts.evaluator import Evaluator
from pipeline.schemas import (
    AlertV1,
    AnomalySummary,
    ModelRef,
    ResultV1,
    StatusV1,
    TelemetryV1,
    VerdictV1,
)

NS = 1_000_000_000
T0 = 472_222 * 3600 * NS  # on a whole hour, so on every window step used here
EDGE = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)
TEACHER = ModelRef(name="conveyor-teacher", version="1.0.0", sha256="cd" * 32)


def mid(prefix: str, seq: int) -> str:
    """A valid message id."""
    return f"{prefix}{seq:010d}"


def result(seq: int, ts: int, **fields: Any) -> ResultV1:
    """A classify result of cam-01 on line1 (override anything)."""
    base: dict[str, Any] = {
        "id": mid("r", seq),
        "site": "plant-a",
        "device": "cam-01",
        "seq": seq,
        "ts": ts,
        "model": EDGE,
        "task": "classify",
        "source": "cam0",
        "line": "line1",
        "label": "ok",
        "score": 0.97,
        "route": "confident",
        "latency_ms": 1.0,
    }
    base.update(fields)
    return ResultV1(**base)


def anomaly(seq: int, ts: int, anomalous: bool, **fields: Any) -> ResultV1:
    """An anomaly result of press1 on edge-01."""
    base: dict[str, Any] = {
        "device": "edge-01",
        "source": "press1",
        "task": "anomaly",
        "model": ModelRef(name="machine-anomaly-int8", version="1.0.0", sha256="ef" * 32),
        "label": "anomaly" if anomalous else "normal",
        "score": 4.5 if anomalous else 0.5,
        "route": "anomalous" if anomalous else "normal",
        "anomaly": AnomalySummary(window_s=1.0, threshold=3.0),
    }
    base.update(fields)
    return result(seq, ts, **base)


def verdict(seq: int, ts: int, edge_label: str, teacher_label: str, **fields: Any) -> VerdictV1:
    """A verdict on a frame of cam-01."""
    base: dict[str, Any] = {
        "id": mid("v", seq),
        "site": "plant-a",
        "device": "cam-01",
        "seq": seq,
        "ts": ts,
        "frame_id": mid("f", seq),
        "result_id": mid("r", seq),
        "source": "cam0",
        "line": "line1",
        "reason": "uncertain",
        "edge_model": EDGE,
        "edge_label": edge_label,
        "edge_score": 0.7,
        "teacher_model": TEACHER,
        "teacher_label": teacher_label,
        "teacher_score": 0.9,
        "teacher_probs": {teacher_label: 0.9},
        "agree": edge_label == teacher_label,
        "latency_ms": 3.0,
    }
    base.update(fields)
    return VerdictV1(**base)


def status(seq: int, ts: int, state: str, **fields: Any) -> StatusV1:
    """A status of cam-01."""
    base: dict[str, Any] = {
        "id": mid("s", seq),
        "site": "plant-a",
        "device": "cam-01",
        "seq": seq,
        "ts": ts,
        "state": state,
        "software": "0.1.0",
    }
    base.update(fields)
    return StatusV1(**base)


def telemetry(seq: int, ts: int, gauges: dict[str, float] | None = None) -> TelemetryV1:
    """A telemetry snapshot of cam-01."""
    return TelemetryV1(
        id=mid("t", seq),
        site="plant-a",
        device="cam-01",
        seq=seq,
        ts=ts,
        interval_s=10.0,
        uptime_s=100.0,
        gauges=gauges or {},
    )


class Table:
    """States kept as JSON text, like a changelog-backed Faust table.

    Every state is loaded from JSON before each call and stored back after it, and
    every store checks that the JSON round trip gives the same state.
    """

    def __init__(self, evaluators: list[Evaluator[Any, Any]]) -> None:
        self.evaluators = evaluators
        self.data: dict[str, str] = {}

    def load(self, ev: Evaluator[Any, Any], key: str) -> Any:
        raw = self.data.get(key)
        return ev.state(key, None if raw is None else json.loads(raw))

    def store(self, ev: Evaluator[Any, Any], key: str, state: Any) -> None:
        doc = state.to_state()
        text = json.dumps(doc, allow_nan=False)
        assert ev.load_state(json.loads(text)).to_state() == doc
        self.data[key] = text

    def feed(self, *messages: Any) -> list[AlertV1]:
        out: list[AlertV1] = []
        for message in messages:
            for ev in self.evaluators:
                for key in ev.keys(message):
                    state = self.load(ev, key)
                    out += ev.observe(message, state)
                    self.store(ev, key, state)
        return out

    def tick(self, now_ns: int) -> list[AlertV1]:
        out: list[AlertV1] = []
        for ev in self.evaluators:
            for key in sorted(self.data):
                if ev.owns(key):
                    state = self.load(ev, key)
                    out += ev.tick(now_ns, state)
                    self.store(ev, key, state)
        return out

    def state(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.data[key]))
