"""Prometheus metrics of one cloud worker (own registry, so tests can run several)."""

from __future__ import annotations

__all__ = ["WorkerMetrics"]

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class WorkerMetrics:
    """What the agents and the sink count."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.processed = Counter(
            "edgeloop_worker_processed", "Records handled by an agent", ["agent"], registry=r
        )
        self.processing = Histogram(
            "edgeloop_worker_processing_seconds",
            "Time an agent spent on one record (one batch for the slow path)",
            ["agent"],
            buckets=_SECONDS,
            registry=r,
        )
        self.dlq = Counter(
            "edgeloop_worker_dlq",
            "Records sent to the dead-letter topic",
            ["agent", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "edgeloop_worker_errors",
            "Exceptions caught while processing one record",
            ["agent"],
            registry=r,
        )
        self.verdicts = Counter(
            "edgeloop_worker_verdicts", "Teacher verdicts", ["agree"], registry=r
        )
        self.teacher_batch = Histogram(
            "edgeloop_worker_teacher_batch_frames",
            "Frames per teacher run",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.alerts = Counter(
            "edgeloop_worker_alerts", "Alert events raised", ["rule", "state"], registry=r
        )
        self.samples = Counter(
            "edgeloop_worker_dataset_samples", "Frames kept as dataset samples", registry=r
        )
        self.sink_points = Counter(
            "edgeloop_worker_sink_points", "Points InfluxDB accepted", ["stream"], registry=r
        )
        self.sink_records = Counter(
            "edgeloop_worker_sink_records",
            "Records whose offsets were committed",
            ["stream"],
            registry=r,
        )
        self.sink_rejected = Counter(
            "edgeloop_worker_sink_rejected",
            "Records the sink dead-lettered",
            ["stream", "reason"],
            registry=r,
        )
        self.derived_points = Counter(
            "edgeloop_worker_derived_points",
            "Fleet and drift points written to InfluxDB",
            registry=r,
        )
        self.devices = Gauge(
            "edgeloop_worker_fleet_devices", "Devices in this worker's fleet table", registry=r
        )

    def rejected(self, stream: str, reason: str) -> None:
        """A sink record went to the DLQ."""
        self.sink_rejected.labels(stream, reason).inc()

    def sunk(self, stream: str, points: int, records: int) -> None:
        """A sink batch was written and committed."""
        self.sink_points.labels(stream).inc(points)
        self.sink_records.labels(stream).inc(records)

    def render(self) -> tuple[bytes, str]:
        """Exposition text for /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
