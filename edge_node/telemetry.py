"""Telemetry messages: the node's metrics, buffered through the outbox like everything else."""

from __future__ import annotations

__all__ = ["TelemetryLoop"]

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_node.config import EdgeConfig
from edge_node.metrics import metric_name
from edge_node.outbox import Outbox
from edge_node.sources.base import Source
from pipeline.schemas import TelemetryV1, new_id, now_ns
from pipeline.schemas.codec import encode
from pipeline.topics import Stream

if TYPE_CHECKING:
    from edge_node.decide import Decider
    from edge_node.publish import Publisher

logger = logging.getLogger(__name__)


class TelemetryLoop:
    """Every ``telemetry.interval_s``, snapshot the figures and queue a ``telemetry`` message."""

    def __init__(
        self,
        config: EdgeConfig,
        decider: Decider,
        outbox: Outbox,
        publisher: Publisher,
        sources: Sequence[Source],
    ) -> None:
        self._config = config
        self._decider = decider
        self._outbox = outbox
        self._publisher = publisher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._started = time.monotonic()
        self._last = self._started
        self._lock = threading.RLock()  # flush -> snapshot -> sync
        self._sources = list(sources)
        self._seen_evictions: dict[str, int] = {}
        self._seen_reconnects = 0

    def start(self) -> None:
        """Start the timer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and queue a last snapshot."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        next_msg = time.monotonic() + self._config.telemetry.interval_s
        while not self._stop.wait(min(1.0, self._config.telemetry.interval_s)):
            self.sync()
            if time.monotonic() >= next_msg:
                next_msg += self._config.telemetry.interval_s
                self.flush()

    def sync(self) -> None:
        """Copy outbox and publisher figures into the metrics (for /metrics and telemetry)."""
        with self._lock:
            self._sync()

    def _sync(self) -> None:
        m = self._decider.metrics
        m.set_outbox(self._outbox.depth(), self._outbox.bytes_used())
        for kind, total in self._outbox.evictions.items():
            delta = total - self._seen_evictions.get(kind, 0)
            if delta > 0:
                m.observe_eviction(kind, delta)
                self._seen_evictions[kind] = total
        stats = self._publisher.stats
        for _ in range(stats.reconnects - self._seen_reconnects):
            m.observe_reconnect()
        self._seen_reconnects = stats.reconnects
        m.set_connected(stats.connected)

    def snapshot(self) -> TelemetryV1:
        """The current figures as a message (takes a sequence number)."""
        self.sync()
        counters, gauges = self._decider.metrics.snapshot()
        for src in self._sources:
            for kind, n in src.errors.items():
                counters[metric_name("source", src.name, "errors", kind)] = n
            gauges[metric_name("source", src.name, "ok")] = 1.0 if src.state == "ok" else 0.0
        stats = self._publisher.stats
        counters["mqtt.published"] = stats.published
        counters["mqtt.acked"] = stats.acked
        now = time.monotonic()
        interval = max(now - self._last, 1e-3)
        self._last = now
        return TelemetryV1(
            id=new_id(),
            site=self._config.site,
            device=self._config.device,
            seq=self._outbox.next_seq(),
            ts=now_ns(),
            interval_s=min(interval, 86_400.0),
            uptime_s=now - self._started,
            counters=counters,
            gauges=gauges,
        )

    def flush(self) -> None:
        """Queue one telemetry message now."""
        with self._lock, self._decider.seq_lock:
            try:
                msg = self.snapshot()
                self._outbox.put(Stream.TELEMETRY, encode(msg), seq=msg.seq)
            except Exception:
                # Telemetry must never take the node down; the next tick tries again.
                logger.exception("could not queue telemetry")
