"""Prometheus metrics of one bridge instance (own registry, so tests can run several).

The bridge counts in batches: one update per read from MQTT and per Kafka
answer, not one per message. Latency histograms are :class:`BatchHistogram`, a
collector that takes a batch of observations under one lock (prometheus_client's
``Histogram.observe`` takes its lock once per value, which cost the bridge about
2 µs a message for its two histograms).
"""

from __future__ import annotations

__all__ = ["BatchHistogram", "BridgeMetrics"]

import bisect
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud_stream.bridge.translate import DeadLetter, KafkaRecord

if TYPE_CHECKING:
    from cloud_stream.bridge.producer import Pending

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class BatchHistogram(Collector):
    """A Prometheus histogram (no labels) fed a batch of values at a time.

    Args:
        name: Metric name, without the ``_bucket``/``_sum``/``_count`` suffixes.
        documentation: Help text.
        buckets: Upper bounds, ascending; ``+Inf`` is added.
        registry: Where to register; None to leave it unregistered.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None,
    ):
        if list(buckets) != sorted(buckets) or len(set(buckets)) != len(buckets):
            raise ValueError(f"histogram {name}: buckets must be strictly ascending: {buckets}")
        self.name = name
        self.documentation = documentation
        self._bounds = [float(b) for b in buckets]
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: Sequence[float]) -> None:
        """Record each of ``values`` (seconds, or whatever the buckets are in)."""
        bounds, find = self._bounds, bisect.bisect_left
        slots = [find(bounds, v) for v in values]
        total = sum(values)
        with self._lock:
            counts = self._counts
            for slot in slots:
                counts[slot] += 1
            self._sum += total

    def observe(self, value: float) -> None:
        """Record one value."""
        self.observe_many((value,))

    def snapshot(self) -> tuple[list[int], float]:
        """Per-bucket (not cumulative) counts, +Inf last, and the sum."""
        with self._lock:
            return list(self._counts), self._sum

    def collect(self) -> Iterator[Metric]:
        """The exposition: cumulative buckets, sum and count."""
        counts, total = self.snapshot()
        cumulative, running = [], 0
        for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
            running += count
            cumulative.append((_bound_label(bound), running))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )

    def describe(self) -> Iterator[Metric]:
        """Registration-time description (names only, so no duplicate is registered)."""
        yield HistogramMetricFamily(self.name, self.documentation)


def _bound_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class BridgeMetrics:
    """Counters, gauges and histograms the bridge updates."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "edgeloop_bridge_messages_in", "MQTT messages received", ["stream"], registry=r
        )
        self.messages_out = Counter(
            "edgeloop_bridge_messages_out", "Records acknowledged by Kafka", ["topic"], registry=r
        )
        self.acks = Counter("edgeloop_bridge_acks", "PUBACKs sent after Kafka acked", registry=r)
        self.dlq = Counter(
            "edgeloop_bridge_dlq", "Payloads sent to the dead-letter topic", ["reason"], registry=r
        )
        self.ignored = Counter(
            "edgeloop_bridge_ignored", "Messages not for the bridge (e.g. OTA offers)", registry=r
        )
        self.redelivered = Counter(
            "edgeloop_bridge_redelivered", "MQTT messages received with the DUP flag", registry=r
        )
        self.retries = Counter(
            "edgeloop_bridge_send_retries", "Kafka sends retried by the bridge", registry=r
        )
        self.reconnects = Counter(
            "edgeloop_bridge_reconnects", "Reconnections", ["side"], registry=r
        )
        self.in_flight = Gauge(
            "edgeloop_bridge_in_flight", "Messages received, not yet acknowledged", registry=r
        )
        self.kafka_latency = BatchHistogram(
            "edgeloop_bridge_kafka_latency_seconds",
            "MQTT receive to Kafka acknowledgement",
            _LATENCY_BUCKETS,
            r,
        )
        self.edge_to_kafka = BatchHistogram(
            "edgeloop_bridge_edge_to_kafka_seconds",
            "Edge capture time to Kafka acknowledgement",
            _LATENCY_BUCKETS,
            r,
        )
        self._children: dict[tuple[str, str], Any] = {}

    def _child(self, metric: Counter, name: str, label: str) -> Any:
        # labels() costs a lock and a dict lookup per call; keep the children.
        key = (name, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def count_in(self, per_stream: dict[str, int], redelivered: int = 0) -> None:
        """MQTT messages received: how many per stream, and how many were redeliveries."""
        for stream, count in per_stream.items():
            self._child(self.messages_in, "in", stream).inc(count)
        if redelivered:
            self.redelivered.inc(redelivered)

    def delivered(self, pendings: Sequence[Pending], now: float, wall_ns: int) -> None:
        """Records Kafka acknowledged: counts per topic and reason, and both latencies.

        Args:
            pendings: The acknowledged messages.
            now: ``time.monotonic()`` of the answer (receive times use that clock).
            wall_ns: ``time.time_ns()`` of the answer (edge timestamps use that clock).
        """
        out: dict[str, int] = {}
        dead: dict[str, int] = {}
        edge: list[float] = []
        for pending in pendings:
            rec = pending.record
            if type(rec) is KafkaRecord:
                out[rec.topic] = out.get(rec.topic, 0) + 1
                edge.append(max(0.0, (wall_ns - rec.edge_ts) / 1e9))
            elif type(rec) is DeadLetter:
                dead[rec.reason] = dead.get(rec.reason, 0) + 1
        for topic, count in out.items():
            self._child(self.messages_out, "out", topic).inc(count)
        for reason, count in dead.items():
            self._child(self.dlq, "dlq", reason).inc(count)
        self.edge_to_kafka.observe_many(edge)
        self.kafka_latency.observe_many([now - p.received for p in pendings])

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
