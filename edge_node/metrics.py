"""Prometheus metrics of an edge node, and the same figures as a telemetry snapshot.

:class:`EdgeMetrics` owns its own ``CollectorRegistry`` (several nodes can live in one
test process). The service feeds it from the runtime, the router, the action
runner, the outbox and the publisher; :meth:`EdgeMetrics.exposition` plugs straight
into :class:`pipeline.http_status.StatusServer` as its ``metrics`` callable, and
:meth:`EdgeMetrics.snapshot` gives the counters and gauges of a ``TelemetryV1``.
"""

from __future__ import annotations

__all__ = ["LATENCY_BUCKETS_S", "EdgeMetrics", "metric_name"]

import re
import threading
from collections import deque
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Seconds; fine at the bottom, where INT8 inference on one core lives.
LATENCY_BUCKETS_S = (
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512,
    1.024, 2.048,
)  # fmt: skip

_BAD = re.compile(r"[^a-z0-9_.]+")


def metric_name(*parts: str) -> str:
    """A telemetry metric name from parts: lower case, ``[a-z0-9_.]``, joined by dots.

    Matches ``TelemetryV1``'s ``^[a-z][a-z0-9_.]{0,127}$``; e.g. ``("skips", "Audit-Budget")``
    gives ``skips.audit_budget``.
    """
    clean = [_BAD.sub("_", p.lower()).strip("_.") or "x" for p in parts]
    name = ".".join(clean)
    if not name[0].isalpha():
        name = "m" + name
    return name[:128]


def _quantile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return 0.0
    pos = q * (len(data) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class EdgeMetrics:
    """Every metric of one edge node.

    Args:
        window: How many recent latencies the snapshot's percentiles cover.
    """

    def __init__(self, window: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inference_seconds = Histogram(
            "edgeloop_edge_inference_seconds",
            "Model run time (preprocessing included for images)",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "edgeloop_edge_decision_seconds",
            "Frame or window in hand to routed decision",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.action_seconds = Histogram(
            "edgeloop_edge_action_seconds",
            "Capture to local action issued",
            ["action"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.routes = Counter(
            "edgeloop_edge_routes", "Decisions by route", ["route", "source"], registry=r
        )
        self.uploads = Counter(
            "edgeloop_edge_uploads", "Frames queued for upload", ["reason", "source"], registry=r
        )
        self.skips = Counter(
            "edgeloop_edge_upload_skips",
            "Frames that would have gone up but did not",
            ["reason", "source"],
            registry=r,
        )
        self.sensor_faults = Counter(
            "edgeloop_edge_sensor_faults",
            "Sensor windows not scored",
            ["reason", "source"],
            registry=r,
        )
        self.input_errors = Counter(
            "edgeloop_edge_input_errors",
            "Frames and sensor blocks rejected before the model",
            ["kind", "source"],
            registry=r,
        )
        self.anomaly_score = Gauge(
            "edgeloop_edge_anomaly_score", "Last anomaly score", ["source"], registry=r
        )
        self.inference_errors = Counter(
            "edgeloop_edge_inference_errors", "Failed model runs", ["model"], registry=r
        )
        self.actions = Counter(
            "edgeloop_edge_actions", "Local actions issued", ["action"], registry=r
        )
        self.action_errors = Counter(
            "edgeloop_edge_action_errors",
            "Local actions that failed",
            ["action", "kind"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "edgeloop_edge_outbox_depth", "Messages waiting in the outbox", registry=r
        )
        self.outbox_bytes = Gauge(
            "edgeloop_edge_outbox_bytes", "Bytes waiting in the outbox", registry=r
        )
        self.outbox_evictions = Counter(
            "edgeloop_edge_outbox_evictions", "Messages evicted when full", ["kind"], registry=r
        )
        self.reconnects = Counter(
            "edgeloop_edge_mqtt_reconnects", "MQTT reconnects of the publisher", registry=r
        )
        self.connected = Gauge("edgeloop_edge_mqtt_connected", "1 while connected", registry=r)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._gauges: dict[str, float] = {}
        self._decision_ms: deque[float] = deque(maxlen=window)
        self._inference_ms: dict[str, deque[float]] = {}
        self._action_ms: deque[float] = deque(maxlen=window)
        self._window = window

    # --- feeding ----------------------------------------------------------------------
    def _add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def observe_inference(self, model: str, ms: float) -> None:
        """One model run of ``model`` took ``ms`` milliseconds."""
        self.inference_seconds.labels(model).observe(ms / 1000)
        with self._lock:
            q = self._inference_ms.get(model)
            if q is None:
                q = self._inference_ms[model] = deque(maxlen=self._window)
            q.append(ms)

    def observe_decision(
        self,
        *,
        source: str,
        model: str,
        route: str,
        infer_ms: float,
        decision_ms: float,
        skipped: str | None = None,
        uploaded: bool = False,
    ) -> None:
        """One routed image decision.

        Args:
            source: Source name.
            model: Model name.
            route: ``confident``, ``uncertain`` or ``audit``.
            infer_ms: Preprocessing plus inference time.
            decision_ms: Frame in hand to routed.
            skipped: ``RouteDecision.skipped``; on a ``confident`` route it was an
                audit sample, counted as ``skips.audit_<reason>``.
            uploaded: Whether a frame was queued for upload.
        """
        self.observe_inference(model, infer_ms)
        self.decision_seconds.labels(model).observe(decision_ms / 1000)
        self._decision_ms.append(decision_ms)
        self.routes.labels(route, source).inc()
        self._add(metric_name("routes", route))
        if uploaded:
            self.uploads.labels(route, source).inc()
            self._add(metric_name("uploads", route))
        elif skipped is not None:
            reason = skipped if route == "uncertain" else f"audit_{skipped}"
            self.skips.labels(reason, source).inc()
            self._add(metric_name("skips", reason))

    def observe_anomaly(
        self,
        source: str,
        model: str,
        score: float | None,
        route: str,
        *,
        infer_ms: float | None = None,
        decision_ms: float | None = None,
    ) -> None:
        """One scored sensor window (``route`` is ``anomalous`` or ``normal``)."""
        self.routes.labels(route, source).inc()
        self._add(metric_name("routes", route))
        if score is not None:
            self.anomaly_score.labels(source).set(score)
        if infer_ms is not None:
            self.observe_inference(model, infer_ms)
        if decision_ms is not None:
            self.decision_seconds.labels(model).observe(decision_ms / 1000)
            self._decision_ms.append(decision_ms)

    def count_sensor_fault(self, source: str, fault: str) -> None:
        """A sensor window was not scored (``non_finite``, ``out_of_range``, ``stuck``)."""
        self.sensor_faults.labels(fault, source).inc()
        self._add("sensor_faults")
        self._add(metric_name("sensor_faults", fault))

    def count_input_error(self, source: str, kind: str) -> None:
        """An input was rejected before the model (``FrameError.reason``, ``bad_block``...)."""
        self.input_errors.labels(kind, source).inc()
        self._add("input_errors")
        self._add(metric_name("input_errors", kind))

    def observe_inference_error(self, model: str) -> None:
        """A model run failed."""
        self.inference_errors.labels(model).inc()
        self._add("inference.errors")

    def observe_action(self, action: str, ms: float) -> None:
        """A local action was issued ``ms`` after capture."""
        self.actions.labels(action).inc()
        self.action_seconds.labels(action).observe(ms / 1000)
        self._action_ms.append(ms)
        self._add("actions.fired")

    def observe_action_error(self, action: str, kind: str) -> None:
        """A local action failed (``exit``, ``timeout``, ``spawn``, ``publish``, ``dropped``)."""
        self.action_errors.labels(action, kind).inc()
        self._add("actions.errors")

    def set_outbox(self, depth: int, size_bytes: int) -> None:
        """Current outbox depth and bytes."""
        self.outbox_depth.set(depth)
        self.outbox_bytes.set(size_bytes)
        with self._lock:
            self._gauges["outbox.depth"] = float(depth)
            self._gauges["outbox.bytes"] = float(size_bytes)

    def observe_eviction(self, kind: str, n: int = 1) -> None:
        """``n`` messages of ``kind`` were evicted from a full outbox."""
        self.outbox_evictions.labels(kind).inc(n)
        self._add("outbox.evicted", n)
        self._add(metric_name("outbox.evicted", kind), n)

    def observe_reconnect(self) -> None:
        """The publisher reconnected to the broker."""
        self.reconnects.inc()
        self._add("mqtt.reconnects")

    def set_connected(self, connected: bool) -> None:
        """Whether the publisher is connected."""
        self.connected.set(1 if connected else 0)
        with self._lock:
            self._gauges["mqtt.connected"] = 1.0 if connected else 0.0

    # --- reading ----------------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        """Prometheus exposition and its content type (a ``StatusServer`` metrics callable)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def snapshot(self) -> tuple[dict[str, int], dict[str, float]]:
        """Counters (totals since start) and gauges for ``TelemetryV1``.

        Gauges include ``latency.decision_p50_ms``/``_p99_ms``, ``latency.action_p99_ms``
        and ``latency.inference_p50_ms.<model>``/``_p99_ms.<model>`` over the last
        ``window`` observations.
        """
        with self._lock:
            counters = dict(self._counts)
            gauges = dict(self._gauges)
            inference = {m: list(q) for m, q in self._inference_ms.items()}
        decision = list(self._decision_ms)
        if decision:
            gauges["latency.decision_p50_ms"] = _quantile(decision, 0.5)
            gauges["latency.decision_p99_ms"] = _quantile(decision, 0.99)
        action = list(self._action_ms)
        if action:
            gauges["latency.action_p99_ms"] = _quantile(action, 0.99)
        for model, values in inference.items():
            if values:
                gauges[metric_name("latency.inference_p50_ms", model)] = _quantile(values, 0.5)
                gauges[metric_name("latency.inference_p99_ms", model)] = _quantile(values, 0.99)
        return counters, gauges
