"""Prometheus metrics of one bridge instance (own registry, so tests can run several)."""

from __future__ import annotations

__all__ = ["BridgeMetrics"]

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


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
        self.kafka_latency = Histogram(
            "edgeloop_bridge_kafka_latency_seconds",
            "MQTT receive to Kafka acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.edge_to_kafka = Histogram(
            "edgeloop_bridge_edge_to_kafka_seconds",
            "Edge capture time to Kafka acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self._children: dict[tuple[str, str], Any] = {}

    def _child(self, metric: Counter, name: str, label: str) -> Any:
        # labels() costs a lock and a dict lookup per call; keep the children.
        key = (name, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def count_in(self, stream: str) -> None:
        """One MQTT message received on ``stream``."""
        self._child(self.messages_in, "in", stream).inc()

    def count_out(self, topic: str) -> None:
        """One record acknowledged by Kafka on ``topic``."""
        self._child(self.messages_out, "out", topic).inc()

    def count_dlq(self, reason: str) -> None:
        """One dead letter written, for ``reason``."""
        self._child(self.dlq, "dlq", reason).inc()

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
