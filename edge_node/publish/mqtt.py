"""Publish the outbox to the broker: MQTT v5, QoS 1, a row leaves only after its PUBACK.

One thread owns the paho client and does everything with it: connecting with
backoff, selecting on the socket, publishing, and handling PUBACKs. Because
``publish()`` and the PUBACK callback run on the same thread, a PUBACK can never
arrive before we recorded which row its packet id belongs to. Other threads
only put rows into the outbox, which wakes this thread through a socket pair.

Order and loss: rows go out in ``seq`` order, at most ``max_inflight`` at a
time (and never more than the broker's ``ReceiveMaximum``). When the connection
drops, every row without a PUBACK goes back to pending and is sent again, in
``seq`` order, on the next connection; paho's own copies are dropped so that no
packet is sent under an id we no longer track. Duplicates are possible, loss
is not. A PUBACK with a failure reason code leaves the row queued; publishing
pauses with backoff and the row is retried.

Status: on every connect the retained ``status`` goes ``online``; the last will
(set before each connect) makes it ``offline`` when the connection dies without
a DISCONNECT; :meth:`Publisher.stop` publishes ``offline`` itself.
"""

from __future__ import annotations

__all__ = ["Publisher"]

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from edge_node.outbox import Outbox
from edge_node.publish.client import (
    PublisherStats,
    backoff_delay,
    connect_properties,
    make_client,
    user_properties,
)
from edge_node.publish.errors import PublishError
from edge_node.publish.netloop import TICK_S, Wakeup, pump_until, step
from edge_node.publish.status import StatusFactory, basic_status
from pipeline.config.base import MqttConfig
from pipeline.schemas.codec import encode
from pipeline.topics import Stream, mqtt_topic

logger = logging.getLogger(__name__)

_OFFLINE_WAIT_S = 2.0  # at stop, how long to wait for the offline status's PUBACK


class Publisher:
    """Send outbox rows to the broker with at-least-once delivery.

    Args:
        outbox: Where rows come from; acknowledged rows are deleted from it.
        mqtt: Broker connection settings.
        site: Site id, for topics.
        device: Device id: the MQTT client id and the topic's device part.
        status: Builds the status messages; a plain one when None.
        max_inflight: Rows published and not yet acknowledged, at most.
    """

    def __init__(
        self,
        outbox: Outbox,
        mqtt: MqttConfig,
        *,
        site: str,
        device: str,
        status: StatusFactory | None = None,
        max_inflight: int = 256,
    ):
        if max_inflight < 1:
            raise PublishError(f"max_inflight must be at least 1, got {max_inflight}")
        if outbox.device != device:
            raise PublishError(
                f"the outbox belongs to device {outbox.device!r}, not {device!r}",
                hint="open the outbox with the same device id",
            )
        self.outbox = outbox
        self.config = mqtt
        self.site = site
        self.device = device
        self.max_inflight = max_inflight
        self.stats = PublisherStats()
        self._status = status or basic_status(site, device)
        self._topics: dict[Stream, str] = {
            s: mqtt_topic(site, device, s) for s in Stream if s is not Stream.OTA
        }
        self._client = make_client(mqtt, device)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._wakeup = Wakeup()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._drain_deadline = 0.0
        self._connected_event = threading.Event()
        self._disconnected_event = threading.Event()
        self._disconnected_event.set()
        self._idle = threading.Condition()
        # Owned by the I/O thread:
        self._by_mid: dict[int, int] = {}  # packet id -> outbox row id
        self._acked: list[int] = []
        self._window = max_inflight
        self._status_mid: int | None = None
        self._status_acked = threading.Event()
        self._ever_connected = False
        self._attempt = 0
        # Rows the broker refused: kept in flight (hidden) until their retry time.
        self._held: dict[int, float] = {}  # row id -> retry at (monotonic)
        self._refusals: dict[int, int] = {}  # row id -> refusals in a row
        outbox.add_listener(self.notify)

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start the I/O thread; it connects (and reconnects) by itself."""
        if self._thread is not None:
            raise PublishError("the publisher was already started", where=self.device)
        self._thread = threading.Thread(target=self._run, name=f"publish-{self.device}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Publish what is pending for up to ``drain_timeout`` s, go offline, disconnect.

        Rows not acknowledged by then stay in the outbox for the next run.
        Nothing is published after this returns.
        """
        if self._thread is None:
            self._wakeup.close()
            return
        self._drain_deadline = time.monotonic() + max(0.0, drain_timeout)
        self._stop.set()
        self.notify()
        # The thread may be inside a blocking connect (connect_timeout) or the offline wait.
        self._thread.join(drain_timeout + self._client.connect_timeout + _OFFLINE_WAIT_S + 5)
        if self._thread.is_alive():
            logger.error("publisher thread for %s did not stop", self.device)
            return
        self._wakeup.close()

    def notify(self) -> None:
        """Wake the I/O thread (the outbox calls this after every put)."""
        self._wakeup.notify()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the broker accepted a connection."""
        return self._connected_event.wait(timeout)

    def wait_disconnected(self, timeout: float) -> bool:
        """Wait until there is no connection (for tests and health checks)."""
        return self._disconnected_event.wait(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the outbox is empty: everything put so far was acknowledged."""
        return self.wait_depth(0, timeout)

    def wait_depth(self, at_most: int, timeout: float) -> bool:
        """Wait until the outbox holds at most ``at_most`` rows."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.outbox.depth() > at_most:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Woken on every batch of acks; the cap covers rows evicted meanwhile.
                self._idle.wait(min(left, 1.0))
        return True

    # --- the I/O thread -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self._connect():
                        self._serve()
                except Exception:
                    # A failing disk or a bug in a callback must not end publishing for
                    # good: drop this connection, back off and try again.
                    logger.exception("MQTT %s: publisher error; reconnecting", self.device)
                    self._abandon_connection()
                if self._stop.is_set():
                    break
                delay = backoff_delay(self.config, self._attempt)
                self._attempt += 1
                logger.info("MQTT %s: reconnecting in %.1fs", self.device, delay)
                self._stop.wait(delay)
        finally:
            try:
                self._release_all()
            except Exception:
                logger.exception("MQTT %s: releasing in-flight rows failed", self.device)

    def _connect(self) -> bool:
        c = self.config
        offline = self._status("offline", seq=self.outbox.next_seq(), reason="connection lost")
        self._client.will_set(self._topics[Stream.STATUS], encode(offline), qos=1, retain=True)
        try:
            self._client.connect(
                c.host,
                c.port,
                keepalive=c.keepalive_s,
                clean_start=False,
                properties=connect_properties(c),
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
            self.stats.connect_failures += 1
            logger.warning("MQTT %s: cannot connect to %s:%s: %s", self.device, c.host, c.port, exc)
            return False
        return True

    def _serve(self) -> None:
        """Run one connection until it drops, or until stop has drained it."""
        client = self._client
        while True:
            sock = client.socket()
            if sock is None:
                return
            self._flush_acks()
            if self._stop.is_set() and self._finish_stop():
                return
            self._release_due()
            self._fill()
            step(client, self._wakeup, self._timeout())

    def _timeout(self) -> float:
        timeout = TICK_S
        now = time.monotonic()
        if self._held:
            timeout = min(timeout, max(0.0, min(self._held.values()) - now))
        if self._stop.is_set():
            timeout = min(timeout, max(0.0, self._drain_deadline - now) + 0.01)
        return timeout

    def _fill(self) -> None:
        """Publish pending rows in seq order until the window is full."""
        if not self.stats.connected:
            return
        room = self._window - len(self._by_mid)
        if room <= 0:
            return
        rows = self.outbox.take(room)
        for i, row in enumerate(rows):
            info = self._client.publish(
                self._topics[row.stream],
                row.payload,
                qos=1,
                retain=row.stream is Stream.STATUS,
                properties=user_properties(row),
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # The connection broke under us (on_disconnect has run or will run):
                # these rows go back to pending, and paho's copies are dropped on connect.
                self.outbox.release(r.row_id for r in rows[i:])
                if info.rc not in (mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST):
                    logger.warning("MQTT %s: publish failed (%s)", self.device, info.rc)
                break
            self._by_mid[info.mid] = row.row_id
            self.stats.published += 1
        self.stats.inflight = len(self._by_mid)

    def _flush_acks(self) -> None:
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.outbox.ack(acked)
        self.stats.acked += len(acked)
        with self._idle:
            self._idle.notify_all()

    def _release_all(self, *, keep_held: bool = False) -> None:
        """In-flight rows go back to pending; refused ones too unless ``keep_held``."""
        self._flush_acks()
        self.outbox.release(self._by_mid.values())
        self._by_mid.clear()
        self.stats.inflight = 0
        if not keep_held:
            self.outbox.release(self._held)
            self._held.clear()

    def _release_due(self) -> None:
        """Refused rows whose retry time came go back to pending."""
        if not self._held:
            return
        now = time.monotonic()
        due = [row for row, at in self._held.items() if at <= now]
        for row in due:
            del self._held[row]
        self.outbox.release(due)

    def _finish_stop(self) -> bool:
        """While stopping: True once drained (or out of time) and disconnected."""
        drained = self.outbox.depth() == 0 and not self._by_mid
        if not drained and time.monotonic() < self._drain_deadline:
            return False
        if not drained:
            logger.warning(
                "MQTT %s: stopping with %d rows not acknowledged; they stay in the outbox",
                self.device,
                self.outbox.depth(),
            )
        if self.stats.connected:
            self._go_offline()  # PUBACKs still in flight are taken while we wait for it
        self._client.disconnect()
        pump_until(self._client, lambda: self._client.socket() is None, _OFFLINE_WAIT_S)
        self._release_all()
        return True

    def _abandon_connection(self) -> None:
        try:
            self._client.disconnect()
            pump_until(self._client, lambda: self._client.socket() is None, _OFFLINE_WAIT_S)
        except Exception:
            logger.exception("MQTT %s: disconnect failed", self.device)
        self.stats.connected = False
        self._connected_event.clear()
        self._disconnected_event.set()
        self._release_all()

    def _go_offline(self) -> None:
        """Publish the retained offline status and wait briefly for its PUBACK."""
        msg = self._status("offline", seq=self.outbox.next_seq(), reason="stopped")
        info = self._client.publish(self._topics[Stream.STATUS], encode(msg), qos=1, retain=True)
        self._status_mid = info.mid
        self._status_acked.clear()
        if not pump_until(self._client, self._status_acked.is_set, _OFFLINE_WAIT_S):
            logger.warning("MQTT %s: no PUBACK for the offline status", self.device)

    # --- paho callbacks (on the I/O thread) ---------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT %s: connection refused: %s", self.device, reason)
            return
        # We resend unacknowledged rows from the outbox ourselves, in seq order.
        client.drop_out_messages()
        server_max = getattr(props, "ReceiveMaximum", 65535) if props is not None else 65535
        # One slot stays free for status messages.
        self._window = max(1, min(self.max_inflight, int(server_max) - 1))
        self._attempt = 0
        online = self._status("online", seq=self.outbox.next_seq(), reason=None)
        info = client.publish(self._topics[Stream.STATUS], encode(online), qos=1, retain=True)
        self._status_mid = info.mid
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self.stats.connected = True
        self._disconnected_event.clear()
        self._connected_event.set()
        logger.info(
            "MQTT %s connected to %s:%s (session present: %s, window %d)",
            self.device,
            self.config.host,
            self.config.port,
            flags.session_present,
            self._window,
        )

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was_connected = self.stats.connected
        self.stats.connected = False
        self._connected_event.clear()
        self._disconnected_event.set()
        unacked = len(self._by_mid)
        # Refused rows keep their retry time: a broker that drops the connection
        # after refusing (Mosquitto 2.0 does) must not get them again at once.
        self._release_all(keep_held=True)
        if not self._stop.is_set() and was_connected:
            logger.warning(
                "MQTT %s disconnected (%s); %d rows will be resent", self.device, reason, unacked
            )

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any
    ) -> None:
        if mid == self._status_mid:
            self._status_mid = None
            self._status_acked.set()
            if reason.is_failure:
                logger.warning("MQTT %s: status refused by the broker: %s", self.device, reason)
            return
        row_id = self._by_mid.pop(mid, None)
        self.stats.inflight = len(self._by_mid)
        if row_id is None:
            return
        if reason.is_failure:
            # The broker did not take it: it stays queued and is retried with backoff,
            # on its own, so one refused message does not hold up the others.
            self.stats.refused += 1
            attempts = self._refusals.get(row_id, 0)
            self._refusals[row_id] = attempts + 1
            delay = backoff_delay(self.config, attempts)
            self._held[row_id] = time.monotonic() + delay
            logger.warning(
                "MQTT %s: broker refused row %d (%s); retrying in %.1fs",
                self.device,
                row_id,
                reason,
                delay,
            )
            return
        self._refusals.pop(row_id, None)
        self._acked.append(row_id)
