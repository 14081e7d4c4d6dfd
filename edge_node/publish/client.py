"""Making the paho-mqtt v5 client from :class:`~pipeline.config.base.MqttConfig`."""

from __future__ import annotations

__all__ = [
    "PublisherStats",
    "backoff_delay",
    "connect_properties",
    "make_client",
    "user_properties",
]

import random
import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_node.outbox import OutboxMessage
from edge_node.publish.errors import PublishError
from pipeline.config.base import MqttConfig


@dataclass
class PublisherStats:
    """Counters and gauges of a publisher (totals since it was made).

    Written only by the publisher's own thread; safe to read from any thread.
    """

    published: int = 0
    """PUBLISH packets sent for outbox rows (resends included)."""
    acked: int = 0
    """Rows removed from the outbox after a successful PUBACK."""
    refused: int = 0
    """PUBACKs with a failure reason code; the row stays queued and is retried."""
    reconnects: int = 0
    """Connections made after the first one."""
    connect_failures: int = 0
    """Connection attempts that failed (refused, unreachable, timed out)."""
    connected: bool = False
    """Whether the broker accepted our current connection."""
    inflight: int = 0
    """Rows published and waiting for their PUBACK."""


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho v5 client with credentials and TLS set; nothing is connected yet.

    Raises:
        PublishError: if the TLS files cannot be loaded.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,  # our loop reconnects, with our backoff
    )
    # Our own window bounds what is in flight; paho must neither queue nor limit.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect_timeout = 5.0
    if config.username:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls is not None:
        tls = config.tls
        try:
            client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise PublishError(
                f"cannot load the TLS files: {exc}",
                where="mqtt.tls",
                hint="check ca_file, cert_file and key_file (PEM)",
            ) from exc
        client.tls_insecure_set(tls.insecure)
    return client


def connect_properties(config: MqttConfig) -> Properties:
    """CONNECT properties: a session that outlives the connection."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = config.session_expiry_s
    props.ReceiveMaximum = config.receive_maximum
    return props


def backoff_delay(config: MqttConfig, attempt: int) -> float:
    """Exponential backoff with jitter: about ``min * 2**attempt``, at most ``max``.

    The jitter (50-100 % of the step) keeps a fleet that lost the broker at the
    same moment from coming back in lock step.
    """
    step = float(min(config.reconnect_max_s, config.reconnect_min_s * 2 ** min(attempt, 30)))
    return step * (0.5 + random.random() / 2)


def user_properties(row: OutboxMessage) -> Properties | None:
    """The row's metadata as MQTT v5 user properties (frames), or None."""
    if not row.properties:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = list(row.properties.items())
    return props
