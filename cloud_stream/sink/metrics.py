"""Prometheus metrics of the InfluxDB sink (``edgeloop_sink_*``), labelled by bucket."""

from __future__ import annotations

__all__ = ["WriterMetrics"]

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class _SinkMetrics:
    """The ``edgeloop_sink_*`` metrics of one registry, labelled by bucket."""

    def __init__(self, registry: CollectorRegistry):
        labels = ["bucket"]
        self.points = Counter(
            "edgeloop_sink_points_written", "Points InfluxDB accepted", labels, registry=registry
        )
        self.batches = Counter(
            "edgeloop_sink_batches", "Write requests InfluxDB accepted", labels, registry=registry
        )
        self.retries = Counter(
            "edgeloop_sink_retries",
            "Write requests repeated after a failure",
            labels,
            registry=registry,
        )
        self.rejected = Counter(
            "edgeloop_sink_rejected_points",
            "Points InfluxDB refused for good (returned for the dead-letter queue)",
            labels,
            registry=registry,
        )
        self.failing = Gauge(
            "edgeloop_sink_failing",
            "1 while writes fail and are being retried",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "edgeloop_sink_write_latency_seconds",
            "Duration of one accepted write request",
            labels,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
            registry=registry,
        )
        self.batch_points = Histogram(
            "edgeloop_sink_batch_points",
            "Points per accepted write request",
            labels,
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000),
            registry=registry,
        )


class WriterMetrics:
    """One writer's view of the sink metrics (its bucket's children).

    Attributes:
        registry: The Prometheus registry they are registered on.
    """

    def __init__(self, registry: CollectorRegistry, bucket: str):
        with _SHARED_LOCK:
            family = _SHARED.get(registry)
            if family is None:
                family = _SHARED[registry] = _SinkMetrics(registry)
        # labels() takes a lock and a dict lookup; resolve the children once.
        self.registry = registry
        self.points = family.points.labels(bucket)
        self.batches = family.batches.labels(bucket)
        self.retries = family.retries.labels(bucket)
        self.rejected = family.rejected.labels(bucket)
        self.failing = family.failing.labels(bucket)
        self.latency = family.latency.labels(bucket)
        self.batch_points = family.batch_points.labels(bucket)


# Several writers (e.g. one per bucket) may share a registry: they share its metrics.
_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, _SinkMetrics] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()
