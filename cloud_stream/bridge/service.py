"""The bridge process: MQTT v5 shared subscription in, Kafka records out.

The one rule: a device's message is acknowledged to the broker (PUBACK, through
paho's manual ack) only after Kafka acknowledged its record (``acks=all``,
idempotent producer). Until then the broker keeps it in our persistent session
and redelivers it if we crash, so a kill -9 loses nothing; at worst Kafka sees a
duplicate, which consumers drop by ``id``.

Backpressure comes from MQTT itself: the broker sends at most ``receive_maximum``
unacknowledged messages, so when Kafka is slow or down, the bridge holds at most
that many in memory, retrying them, and the rest wait in the broker.

The Kafka client is a :class:`~cloud_stream.bridge.producer.RecordProducer`
(``producer.client``: aiokafka or kafka-python); the rule above lives here, once.
"""

from __future__ import annotations

__all__ = ["Bridge", "device_slot"]

import gc
import logging
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from kafka.errors import KafkaError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.kafka_setup import ensure_topics
from cloud_stream.bridge.metrics import BridgeMetrics
from cloud_stream.bridge.mqtt_client import BatchingClient, Received, supported
from cloud_stream.bridge.producer import Pending, RecordProducer, Skip, make_record_producer
from cloud_stream.bridge.routing import Router, device_slot
from cloud_stream.bridge.translate import DeadLetter, translate
from pipeline.http_status import StatusServer

logger = logging.getLogger(__name__)

_RETRY_MIN_S, _RETRY_MAX_S = 0.2, 10.0


_SKIP = Skip()

# Collect the youngest generation every 100,000 net allocations instead of 700.
_GC_THRESHOLDS = (100_000, 50, 100)


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for the bridge's in-flight window.

    Up to ``receive_maximum`` messages are alive at once, each a handful of
    container objects, and the collector scans every one of them again and
    again. Measured on 100,000 messages at full speed: Python's defaults cost
    about 15% of the bridge's CPU; a threshold of 10,000 still 0.5 s (5 µs a
    message); these thresholds about 0.1 s. No run found any garbage.
    Objects alive after start-up (modules, schemas, clients) are frozen out of
    every scan. Cycles (an exception's traceback, say) are still collected.
    """
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


class Bridge:
    """Move MQTT messages into Kafka with at-least-once delivery.

    Args:
        config: Validated bridge settings.
    """

    def __init__(self, config: BridgeConfig):
        self.config = config
        self.metrics = BridgeMetrics()
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._draining = False
        self._pending: dict[tuple[int, int], Pending] = {}
        self._router = Router(config)
        # Read at scrape time: cheaper than a gauge update per message.
        self.metrics.in_flight.set_function(self.in_flight)
        self._drained = threading.Condition(self._lock)
        self._retry_timers: set[threading.Timer] = set()
        self._producer: RecordProducer | None = None
        # Kafka health: an error since the last successful ack means "not healthy".
        self._kafka_ok_at = 0.0
        self._kafka_error_at: float | None = None
        self._kafka_error = ""
        self._dlq_logged_at = 0.0
        self._dlq_suppressed = 0
        self._status: StatusServer | None = None
        self._client = self._make_client()

    # --- set-up -------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        m = self.config.mqtt
        client_class = BatchingClient if supported() else mqtt.Client
        client = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.instance,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if m.username:
            client.username_pw_set(
                m.username, m.password.get_secret_value() if m.password else None
            )
        if m.tls is not None:
            client.tls_set(ca_certs=m.tls.ca_file, certfile=m.tls.cert_file, keyfile=m.tls.key_file)
            client.tls_insecure_set(m.tls.insecure)
        client.reconnect_delay_set(int(max(1, m.reconnect_min_s)), int(m.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        if isinstance(client, BatchingClient):
            client.on_publish_batch = self._on_publish_batch
        return client

    def ensure_topics(self) -> list[str]:
        """Create the mapped topics and the DLQ if missing; return those created."""
        return ensure_topics(self.config)

    def subscriptions(self) -> list[str]:
        """The subscription filters of this bridge (shared unless partitioned)."""
        return self._router.subscriptions()

    # --- lifecycle ----------------------------------------------------------------
    def start(self, *, wait_s: float = 30.0) -> None:
        """Connect to Kafka (creating topics) and to MQTT; return once subscribed."""
        if self.config.producer.create_topics:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    created = self.ensure_topics()
                    if created:
                        logger.info("created Kafka topics %s", created)
                    break
                except KafkaError as exc:
                    if time.monotonic() > deadline:
                        raise
                    logger.warning("Kafka not reachable yet (%s); retrying", exc)
                    time.sleep(1)
        self._producer = make_record_producer(self.config, self)
        self._producer.start()
        self._start_status()
        m = self.config.mqtt
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = m.session_expiry_s
        props.ReceiveMaximum = m.receive_maximum
        self._client.connect_async(
            m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        # Return only once the broker confirmed the subscription: from then on the
        # persistent session keeps every message for us, even while we are away.
        if not self._subscribed.wait(wait_s):
            logger.warning("MQTT broker %s:%s not reachable yet; still trying", m.host, m.port)

    def _start_status(self) -> None:
        if not (self.config.metrics.enabled or self.config.health.enabled):
            return
        cfg = self.config.metrics if self.config.metrics.enabled else self.config.health
        self._status = StatusServer(
            cfg.host,
            cfg.port,
            self.metrics.render if self.config.metrics.enabled else None,
            self.health if self.config.health.enabled else None,
        )
        self._status.start()
        logger.info("metrics and health on http://%s:%s", cfg.host, self._status.port)

    @property
    def status_port(self) -> int | None:
        """Port of the /metrics and /healthz server, once started."""
        return self._status.port if self._status else None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when connected and subscribed to MQTT and connected to Kafka.

        The details say what is wrong.
        """
        with self._lock:
            in_flight = len(self._pending)
            kafka_ok = self._producer is not None and (
                self._kafka_error_at is None or self._kafka_ok_at >= self._kafka_error_at
            )
        subscribed = self._subscribed.is_set()
        details: dict[str, Any] = {
            "mqtt_connected": self._connected.is_set(),
            "mqtt_subscribed": subscribed,
            "kafka_connected": kafka_ok,
            "in_flight": in_flight,
            "instance": self.config.instance,
            "kafka_client": self.config.producer.client,
        }
        if not kafka_ok:
            details["kafka_error"] = self._kafka_error or "not started"
        mqtt_error = getattr(self._client, "connect_error", None)
        if mqtt_error and not self._connected.is_set():
            details["mqtt_error"] = mqtt_error
        # Subscribed: from then on the broker keeps every message for this session.
        return self._connected.is_set() and subscribed and kafka_ok, details

    def in_flight(self) -> int:
        """Messages received and not yet acknowledged."""
        with self._lock:
            return len(self._pending)

    def stop(self, timeout: float = 30.0) -> None:
        """Drain: take no new messages, wait for Kafka to ack what is in flight, disconnect.

        Messages the broker sends while draining are left unacknowledged: the
        persistent session redelivers them to the next run (or another instance).
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            self._draining = True
            deadline = time.monotonic() + timeout
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "stopping with %d messages not acknowledged; the broker "
                        "will redeliver them",
                        len(self._pending),
                    )
                    break
                self._drained.wait(min(left, 0.5))
        for timer in list(self._retry_timers):
            timer.cancel()
        self._client.disconnect()
        self._client.loop_stop()
        if self._producer is not None:
            self._producer.close(timeout=min(timeout, 10))
        if self._status is not None:
            self._status.stop()

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, then drain and stop (a second signal kills)."""
        stop = threading.Event()

        def handler(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set():
                logger.warning("second signal: exiting without draining")
                raise SystemExit(1)
            logger.info("signal %s: draining", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        self.start()
        _tune_gc()
        logger.info(
            "bridge %s running: %s -> Kafka %s",
            self.config.instance,
            self.subscriptions(),
            self.config.kafka.bootstrap_servers,
        )
        while not stop.wait(1.0):
            pass
        self.stop()
        return 0

    # --- MQTT callbacks (paho's network thread) -----------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT connect refused: %s", reason)
            return
        with self._lock:
            self._generation += 1
            reconnect = self._generation > 1
        if reconnect:
            self.metrics.reconnects.labels("mqtt").inc()
        for topic_filter in self.subscriptions():
            client.subscribe(topic_filter, qos=1)
        if isinstance(client, BatchingClient):
            client.connect_error = None  # connected: an older failure no longer applies
        self._connected.set()
        logger.info("MQTT connected (session present: %s)", flags.session_present)

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        m = self.config.mqtt
        why = getattr(client, "connect_error", None) or "no reason given"
        logger.warning("MQTT connect to %s:%s failed (%s); retrying", m.host, m.port, why)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: list[Any], _props: Any
    ) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            logger.error("MQTT subscription refused: %s", failed)
            return
        self._subscribed.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        with self._lock:
            # Acks for this connection's message ids must never reach the next one:
            # the broker redelivers everything we did not ack, under new ids.
            self._generation += 1
        if not self._stopping.is_set():
            logger.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg.properties, "UserProperty", None) if msg.properties else None
        self._receive([(msg.topic, msg.mid, msg.qos, msg.dup, bytes(msg.payload), props)])

    def _on_publish_batch(self, _client: mqtt.Client, items: list[Received]) -> None:
        self._receive(items)

    def _receive(self, items: Sequence[Received]) -> None:
        """Translate received messages and hand them to the producer (paho's thread).

        Skipped ones (OTA offers, other workers' devices) are acknowledged at once.
        """
        # Generation changes only in paho callbacks, i.e. on this thread: no lock to read it.
        if self._draining:
            return  # not acked: redelivered to the next run
        generation, now, bridge_ts = self._generation, time.monotonic(), time.time_ns()
        config, route_of = self.config, self._router.route
        forward: list[Pending] = []
        skipped: list[Pending] = []
        counts: dict[str, int] = {}
        redelivered = 0
        for topic, mid, qos, dup, payload, props in items:
            pending = Pending(generation, mid, qos, now, _SKIP)
            redelivered += dup
            route = route_of(topic)
            counts[route.label] = counts.get(route.label, 0) + 1
            if route.skip:
                skipped.append(pending)
                continue
            record = translate(
                config,
                topic,
                payload,
                props,
                component=config.instance,
                bridge_ts=bridge_ts,
                addr=route.addr,
            )
            pending.record = record
            forward.append(pending)
            if type(record) is DeadLetter:
                self._log_dead_letter(topic, record)
        self.metrics.count_in(counts, redelivered)
        if skipped:
            self.metrics.ignored.inc(len(skipped))
            self._ack(skipped)
        if not forward:
            return
        with self._lock:
            table = self._pending
            for pending in forward:
                table[(generation, pending.mid)] = pending
        assert self._producer is not None
        self._producer.send_many(forward)

    def _log_dead_letter(self, topic: str, record: DeadLetter) -> None:
        # At most one line a second: a misbehaving device must not flood the logs.
        now = time.monotonic()
        if now - self._dlq_logged_at < 1.0:
            self._dlq_suppressed += 1
            return
        suppressed, self._dlq_suppressed, self._dlq_logged_at = self._dlq_suppressed, 0, now
        logger.warning(
            "dead letter from %s (%s): %s%s",
            topic,
            record.reason,
            record.detail.splitlines()[0],
            f" (+{suppressed} more not logged)" if suppressed else "",
        )

    # --- Kafka side: the producer's DeliveryHandler (any thread) ------------------
    def on_kafka_status(self, error: BaseException | None) -> None:
        """Kafka reachable (``None``) or not (the error, shown by health)."""
        if error is None:
            self._kafka_ok_at = time.monotonic()
        else:
            self._kafka_error = f"{type(error).__name__}: {error}"
            self._kafka_error_at = time.monotonic()

    def on_delivered(self, pendings: Sequence[Pending]) -> None:
        """Kafka has these records: count them and acknowledge them to the broker."""
        now = time.monotonic()
        self._kafka_ok_at = now
        self.metrics.delivered(pendings, now, time.time_ns())
        self._ack(pendings)

    def on_failed(self, pendings: Sequence[Pending], exc: BaseException) -> None:
        """Send these again after a backoff (together, in their order)."""
        self.on_kafka_status(exc)
        if not pendings:
            return
        attempt = max(p.attempt for p in pendings) + 1
        for p in pendings:
            p.attempt = attempt
        self.metrics.retries.inc(len(pendings))
        delay = min(_RETRY_MAX_S, _RETRY_MIN_S * 2 ** min(attempt, 10))
        logger.warning(
            "Kafka send of %d records failed (%s); retry %d in %.1fs",
            len(pendings),
            exc,
            attempt,
            delay,
        )
        timer = threading.Timer(delay, self._retry_fire, args=(list(pendings),))
        timer.daemon = True
        with self._lock:
            self._retry_timers.add(timer)
        timer.start()

    def _retry_fire(self, pendings: list[Pending]) -> None:
        with self._lock:
            self._retry_timers.discard(threading.current_thread())
            live = []
            for p in pendings:
                if p.generation == self._generation:
                    live.append(p)
                else:
                    # Its connection is gone, so the broker redelivers it: drop our copy.
                    self._pending.pop((p.generation, p.mid), None)
            self._drained.notify_all()
        assert self._producer is not None
        self._producer.send_many(live)

    def _ack(self, pendings: Sequence[Pending]) -> None:
        """PUBACK the messages of the current connection; forget all of ``pendings``."""
        client = self._client
        batching = isinstance(client, BatchingClient)
        acked = 0
        with self._lock:
            table = self._pending
            generation = self._generation
            mids = []
            for p in pendings:
                key = (p.generation, p.mid)
                if table.get(key) is p:
                    del table[key]
                elif p.record is not _SKIP:
                    continue  # settled already (a late answer after a retry): never ack twice
                # Under the lock: a disconnect (which bumps the generation) cannot slip
                # between the check and the queueing, so no ack reaches the next connection.
                if p.generation != generation:
                    continue
                acked += 1
                if p.qos == 1 and batching:
                    mids.append(p.mid)
                elif p.qos > 0:
                    client.ack(p.mid, p.qos)
            if mids:
                client.ack_many(mids)  # type: ignore[attr-defined]
            if self._draining:
                self._drained.notify_all()
        if acked:
            self.metrics.acks.inc(acked)
