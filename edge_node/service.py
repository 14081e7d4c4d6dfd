"""The edge node: sources -> model -> router -> (local action) -> outbox -> MQTT.

One thread per source reads, decides and writes to the durable outbox; the
publisher thread drains the outbox over MQTT; a telemetry thread snapshots the
metrics into ``telemetry`` messages. Nothing on the decision path waits for the
network, so the node keeps deciding while offline.
"""

from __future__ import annotations

__all__ = ["EdgeNode"]

import logging
import signal
import threading
from types import FrameType

from edge_node.config import EdgeConfig
from edge_node.decide import Decider
from edge_node.models import LoadedModels, load_models
from edge_node.outbox import Outbox
from edge_node.publish import Publisher
from edge_node.publish.status import StatusState
from edge_node.sources import create_source
from edge_node.sources.base import Source
from edge_node.telemetry import TelemetryLoop
from pipeline import __version__
from pipeline.errors import EdgeloopError
from pipeline.http_status import StatusServer
from pipeline.schemas import StatusV1, new_id, now_ns
from pipeline.schemas.codec import encode
from pipeline.topics import Stream

logger = logging.getLogger(__name__)


class EdgeNode:
    """A running edge node built from an :class:`EdgeConfig`.

    Construction checks everything that can be checked without starting threads
    (model packages, source configs) and raises :class:`EdgeloopError` with the
    reason, so a broken node refuses to start instead of half-running.
    """

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.models: LoadedModels = load_models(config)
        self.outbox = Outbox(
            config.outbox.file,
            max_bytes=int(config.outbox.max_mb * 1024 * 1024),
            device=config.device,
            synchronous=config.outbox.synchronous,
        )
        self.decider = Decider(config, self.models, self.outbox)
        self.metrics = self.decider.metrics
        self.sources: list[Source] = [create_source(s) for s in config.sources]
        self.publisher = Publisher(
            self.outbox,
            config.mqtt,
            site=config.site,
            device=config.device,
            status=self._status,
        )
        self.telemetry = TelemetryLoop(
            config, self.decider, self.outbox, self.publisher, self.sources
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: StatusServer | None = None

    # -- status -------------------------------------------------------------------------

    def _status(self, state: StatusState, *, seq: int, reason: str | None) -> StatusV1:
        """The device status with models and per-source state (publisher's factory)."""
        states = {s.name: s.state for s in self.sources}
        if state == "online" and any(v != "ok" for v in states.values()):
            state = "degraded"
            bad = sorted(k for k, v in states.items() if v != "ok")
            reason = reason or f"source(s) not ok: {', '.join(bad)}"
        return StatusV1(
            id=new_id(),
            site=self.config.site,
            device=self.config.device,
            seq=seq,
            ts=now_ns(),
            state=state,
            reason=reason,
            software=__version__,
            models=[m.ref for m in self.models.all()],
            sources=states,
        )

    def _queue_status(self) -> None:
        """Queue the current (retained) status, e.g. after a camera was lost or came back."""
        with self.decider.seq_lock:
            msg = self._status("online", seq=self.outbox.next_seq(), reason=None)
            self.outbox.put(Stream.STATUS, encode(msg), seq=msg.seq)

    def health(self) -> tuple[bool, dict[str, object]]:
        """(ok, details) for /healthz: ok while every source is ok.

        The uplink state is reported but does not make the node unhealthy: it is
        built to keep deciding offline.
        """
        sources = {s.name: s.state for s in self.sources}
        details: dict[str, object] = {
            "sources": sources,
            "mqtt_connected": self.publisher.stats.connected,
            "outbox_depth": self.outbox.depth(),
        }
        return all(v == "ok" for v in sources.values()), details

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Open the sources and start every thread."""
        import cv2

        # OpenCV's own thread pool would compete with inference for the one core.
        cv2.setNumThreads(1)
        # Everything that can fail (a port in use, a source that cannot open) comes
        # before any thread starts, so a failed start leaves nothing running.
        if self.config.metrics.enabled or self.config.health.enabled:
            # One server answers both paths, on the metrics address when metrics are on.
            cfg = self.config.metrics if self.config.metrics.enabled else self.config.health
            try:
                self._server = StatusServer(
                    cfg.host,
                    cfg.port,
                    self.decider.metrics.exposition if self.config.metrics.enabled else None,
                    self.health if self.config.health.enabled else None,
                )
            except OSError as exc:
                raise EdgeloopError(
                    f"cannot serve /metrics and /healthz on {cfg.host}:{cfg.port}: {exc}",
                    where="metrics.port",
                    hint="pick a free port (0 picks one) or stop what holds it",
                ) from exc
        for src in self.sources:
            src.open()
        if self._server is not None:
            self._server.start()
            logger.info("metrics and health on http://%s:%d", cfg.host, self._server.port)
        stale = self.outbox.discard(Stream.STATUS)  # the publisher sends the current one
        if stale:
            logger.info("dropped %d stale status message(s) from the last run", stale)
        self.publisher.start()
        for src in self.sources:
            t = threading.Thread(target=self._source_loop, args=(src,), name=f"src-{src.name}")
            t.start()
            self._threads.append(t)
        self.telemetry.start()
        logger.info(
            "edge node %s/%s started: %d source(s), models %s",
            self.config.site,
            self.config.device,
            len(self.sources),
            ", ".join(f"{m.ref.name}@{m.ref.version}" for m in self.models.all()),
        )

    def _source_loop(self, src: Source) -> None:
        last_state = src.state
        while not self._stop.is_set():
            item = None
            try:
                item = src.read(timeout=0.5)
                if src.state == "error":
                    src.state = "ok"  # it reads again (sources that track no state)
            except Exception as exc:
                # A failing source must show (status, /healthz, a count), never end
                # its thread silently; the other sources keep going.
                logger.error("source %s failed: %s", src.name, exc)
                src.state = "error"
                src.count_error("read_failed")
                self._stop.wait(1.0)
            if src.state != last_state:
                logger.warning("source %s is now %s", src.name, src.state)
                last_state = src.state
                self._queue_status()
            if item is None:
                if src.exhausted:
                    logger.info("source %s finished", src.name)
                    return
                continue
            self.decider.handle(src, item)

    @property
    def sources_done(self) -> bool:
        """True when every source thread has ended (finite sources exhausted)."""
        return all(not t.is_alive() for t in self._threads)

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop reading, flush telemetry, give the publisher ``drain_timeout`` to send."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        if self._threads:
            self.telemetry.stop()
        self.decider.close()
        self.publisher.stop(drain_timeout=drain_timeout)
        for src in self.sources:
            src.close()
        if self._server is not None:
            self._server.stop()
        self.outbox.close()
        logger.info("edge node stopped")

    def run(self, *, exit_when_done: bool = False, drain_timeout: float = 10.0) -> int:
        """Run until SIGTERM/SIGINT (a second Ctrl+C exits at once), or until finite
        sources end and the outbox is drained when ``exit_when_done``."""
        interrupted = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if interrupted.is_set():
                raise SystemExit(130)
            logger.info("signal %d: stopping", signum)
            interrupted.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        drain_left = drain_timeout
        try:
            self.start()
            while not interrupted.wait(0.2):
                if exit_when_done and self.sources_done:
                    self.telemetry.flush()
                    if not self.publisher.wait_depth(0, timeout=drain_timeout):
                        logger.warning(
                            "outbox still holds %d message(s) after %.0f s; they stay queued",
                            self.outbox.depth(),
                            drain_timeout,
                        )
                        drain_left = 1.0  # waited once already; just send the last telemetry
                    break
        finally:
            self.stop(drain_timeout=drain_left)
        return 0
