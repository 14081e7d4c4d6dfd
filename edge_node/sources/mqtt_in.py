"""The ``mqtt`` source: raw sensor readings that PLC gateways and devices publish over MQTT.

Payloads are JSON single readings or blocks (see :mod:`edge_node.sources.mqtt_payload`).
Rows are accumulated per topic (one device never mixes with another) into
:class:`SensorBlock` s of ``block_samples`` rows, columns in ``channels`` order.
A channel missing from a payload is NaN in its rows (counted as
``missing_channel``); NaN, inf and null values pass as NaN for the runtime to
flag. Invalid payloads are counted by reason and logged (rate-limited) with
their topic; they never stop the source.
"""

from __future__ import annotations

__all__ = ["MqttSource", "MqttSourceConfig", "PayloadError", "parse_payload"]

import logging
import math
import queue
import threading
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from edge_node.sources.base import SensorBlock, Source, SourceConfig, SourceError, register
from edge_node.sources.mqtt_payload import PayloadError, Reading, parse_payload
from pipeline.config.base import MqttConfig
from pipeline.logs import WarnLimiter

logger = logging.getLogger(__name__)


class MqttSourceConfig(SourceConfig):
    """Sensor readings received from an MQTT broker."""

    type: Literal["mqtt"] = Field(default="mqtt", description="Source plugin key")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Broker to subscribe on")
    topic: str = Field(
        min_length=1,
        max_length=65535,
        description="Topic filter, e.g. 'plant/line1/+/sensors'; each topic is assembled apart",
    )
    qos: Literal[0, 1] = Field(default=1, description="Subscription QoS")
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description="Fixed client id: enables a persistent session (readings published "
        "while away are queued by the broker). Unset: a fresh session each start",
    )
    channels: list[str] = Field(
        min_length=1, description="Channel names, the column order of the blocks"
    )
    rate_hz: float = Field(gt=0, le=1_000_000, description="Sample rate of the readings")
    block_samples: int = Field(default=256, ge=1, le=1_000_000, description="Rows per block")
    max_payload_bytes: int = Field(
        default=1_048_576, ge=64, description="Larger payloads are rejected as 'oversize'"
    )
    max_queued_blocks: int = Field(
        default=64, ge=1, description="Blocks kept for a slow reader; the oldest is dropped"
    )
    max_topics: int = Field(
        default=1000, ge=1, description="Distinct topics assembled at once; more are rejected"
    )

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("topic filter contains NUL")
        levels = value.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole level, and the last one")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole level")
        return value

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or not all(value):
            raise ValueError("channel names must be non-empty and unique")
        return value


class _Assembler:
    """Rows of one topic waiting to fill a block."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.first_ts: list[int] = []  # ts of the first row of each chunk in ``rows``
        self.count = 0


@register(MqttSourceConfig)
class MqttSource(Source):
    """Sensor blocks assembled from MQTT readings; see the module docstring."""

    kind = "sensor"
    config: MqttSourceConfig

    def __init__(self, config: MqttSourceConfig) -> None:
        super().__init__(config)
        self.state = "lost"  # until connected
        self._queue: queue.Queue[SensorBlock] = queue.Queue(config.max_queued_blocks)
        self._assemblers: dict[str, _Assembler] = {}
        self._index = 0
        self._client: Any = None
        self._subscribed = threading.Event()
        self._warn = WarnLimiter(logger)

    # --- lifecycle --------------------------------------------------------------------
    def open(self) -> None:
        """Start connecting in the background (paho retries with backoff).

        Raises:
            SourceError: paho-mqtt is not installed, or the TLS files are unusable.
        """
        if self._client is not None:
            return
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SourceError(
                "paho-mqtt is not installed", hint="pip install 'edgeloop[edge]'"
            ) from exc
        m = self.config.mqtt
        persistent = self.config.client_id is not None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id or "",
            protocol=mqtt.MQTTv5,
        )
        if m.username:
            client.username_pw_set(
                m.username, m.password.get_secret_value() if m.password else None
            )
        if m.tls is not None:
            try:
                client.tls_set(
                    ca_certs=m.tls.ca_file, certfile=m.tls.cert_file, keyfile=m.tls.key_file
                )
            except (OSError, ValueError) as exc:
                raise SourceError(
                    f"cannot set up TLS: {exc}",
                    where=f"source {self.name}: mqtt.tls",
                    hint="check the CA, certificate and key file paths",
                ) from exc
            client.tls_insecure_set(m.tls.insecure)
        client.reconnect_delay_set(max(1, round(m.reconnect_min_s)), round(m.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = m.receive_maximum
        if persistent and m.session_expiry_s:
            props.SessionExpiryInterval = m.session_expiry_s
        client.connect_async(
            m.host, m.port, keepalive=m.keepalive_s, clean_start=not persistent, properties=props
        )
        client.loop_start()
        self._client = client

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the subscription is acknowledged; True if it is."""
        return self._subscribed.wait(timeout)

    def read(self, timeout: float = 1.0) -> SensorBlock | None:
        """The next complete block, or ``None`` if none within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        """Disconnect; rows of incomplete blocks are dropped. Safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._subscribed.clear()
        self.state = "lost"

    # --- paho callbacks (network thread) ----------------------------------------------
    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            logger.warning("mqtt source %s: connect refused: %s", self.name, reason)
            return
        logger.info("mqtt source %s: connected, subscribing to %s", self.name, self.config.topic)
        client.subscribe(self.config.topic, qos=self.config.qos)

    def _on_subscribe(self, _c: Any, _ud: Any, _mid: int, codes: Any, _props: Any) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            logger.error(
                "mqtt source %s: subscription to %s refused: %s",
                self.name,
                self.config.topic,
                failed[0],
            )
            self.count_error("subscribe_refused")
            self.state = "error"
            return
        self.state = "ok"
        self._subscribed.set()

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._subscribed.clear()
        if self._client is None:
            return  # our own close()
        logger.warning("mqtt source %s: disconnected (%s), reconnecting", self.name, reason)
        self.state = "lost"
        self.count_error("reconnect")

    def _on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        try:
            reading = parse_payload(
                msg.payload, self.config.channels, max_bytes=self.config.max_payload_bytes
            )
            rate = reading.rate_hz
            if rate is not None and not math.isclose(rate, self.config.rate_hz, rel_tol=1e-6):
                raise PayloadError(
                    "rate_mismatch", f"rate_hz {rate:g} differs from the configured rate"
                )
        except PayloadError as exc:
            self.count_error(exc.reason)
            self._warn.warn("mqtt source %s: invalid payload on %s: %s", self.name, msg.topic, exc)
            return
        except Exception:  # a bug here must not kill paho's network thread
            self.count_error("internal")
            logger.exception("mqtt source %s: failed on a payload from %s", self.name, msg.topic)
            return
        if reading.missing:
            self.count_error("missing_channel")
        if reading.unknown:
            self.count_error("unknown_channel")
            self._warn.warn(
                "mqtt source %s: %s sent channels not in the config, ignored: %s",
                self.name,
                msg.topic,
                ", ".join(reading.unknown),
            )
        self._add(msg.topic, reading)

    # --- assembly ---------------------------------------------------------------------
    def _add(self, topic: str, reading: Reading) -> None:
        asm = self._assemblers.get(topic)
        if asm is None:
            if len(self._assemblers) >= self.config.max_topics:
                self.count_error("too_many_topics")
                self._warn.warn("mqtt source %s: too many topics, dropped %s", self.name, topic)
                return
            asm = self._assemblers[topic] = _Assembler()
        asm.rows.append(reading.values)
        asm.first_ts.append(reading.ts_ns)
        asm.count += len(reading.values)
        n = self.config.block_samples
        while asm.count >= n:
            self._emit(topic, asm, n)

    def _emit(self, topic: str, asm: _Assembler, n: int) -> None:
        stacked = np.concatenate(asm.rows) if len(asm.rows) > 1 else asm.rows[0]
        ts_ns = asm.first_ts[0]
        block_values, rest = stacked[:n], stacked[n:]
        # The rest starts inside the last chunk: its ts follows from the rate.
        last_len = len(asm.rows[-1])
        offset_in_last = last_len - len(rest)
        rest_ts = asm.first_ts[-1] + round(offset_in_last * 1e9 / self.config.rate_hz)
        asm.rows = [rest] if len(rest) else []
        asm.first_ts = [rest_ts] if len(rest) else []
        asm.count = len(rest)
        block = SensorBlock(
            source=self.name,
            index=self._index,
            ts_ns=ts_ns,
            mono_ns=time.perf_counter_ns(),
            rate_hz=self.config.rate_hz,
            channels=tuple(self.config.channels),
            values=np.ascontiguousarray(block_values),
            extra={"topic": topic},
        )
        self._index += 1
        while True:
            try:
                self._queue.put_nowait(block)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.count_error("overflow")
                except queue.Empty:
                    pass
