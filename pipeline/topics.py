"""Topic names for MQTT and Kafka, built and parsed in one place.

MQTT layout (see docs/architecture.md)::

    edgeloop/v1/{site}/{device}/{stream}

where ``stream`` is one of :class:`Stream`. Ids that go into a topic are checked
so that no publish topic can contain a wildcard, a level separator or a ``$``
prefix, and so that they stay readable as Kafka keys and InfluxDB tags.
"""

from __future__ import annotations

__all__ = [
    "ID_PATTERN",
    "MQTT_ROOT",
    "KafkaTopics",
    "MqttAddress",
    "Stream",
    "check_id",
    "check_kafka_topic",
    "mqtt_filter",
    "mqtt_topic",
    "parse_mqtt_topic",
    "shared_filter",
]

import re
from dataclasses import dataclass
from enum import StrEnum

from pipeline.errors import TopicError

MQTT_ROOT = "edgeloop/v1"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
_KAFKA_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SHARE_GROUP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Stream(StrEnum):
    """The kinds of MQTT stream a device has; the value is the topic suffix."""

    RESULT = "result"
    FRAME = "frame"
    TELEMETRY = "telemetry"
    STATUS = "status"
    OTA = "ota"
    OTA_REPORT = "ota/report"


class KafkaTopics:
    """Names of the Kafka topics; the key of every record is the device id."""

    RESULTS = "edgeloop.results"
    FRAMES = "edgeloop.frames"
    TELEMETRY = "edgeloop.telemetry"
    STATUS = "edgeloop.status"
    VERDICTS = "edgeloop.verdicts"
    ALERTS = "edgeloop.alerts"
    OTA = "edgeloop.ota"
    DLQ = "edgeloop.dlq"

    ALL: tuple[str, ...] = (RESULTS, FRAMES, TELEMETRY, STATUS, VERDICTS, ALERTS, OTA, DLQ)


def check_id(value: str, *, what: str = "id") -> str:
    """Return ``value`` if it is a safe id for topics, keys and tags.

    Raises:
        TopicError: naming the bad value and the allowed form.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise TopicError(
            f"{what} {value!r} is not a valid id",
            hint="use 1-64 characters of letters, digits, '_', '.', '-', starting with a "
            "letter or digit (no '/', '+', '#', '$' or spaces)",
        )
    return value


def check_kafka_topic(name: str) -> str:
    """Return ``name`` if Kafka accepts it as a topic name."""
    if not _KAFKA_TOPIC_RE.match(name) or name in {".", ".."}:
        raise TopicError(
            f"Kafka topic {name!r} is not valid",
            hint="use 1-249 characters of letters, digits, '.', '_' and '-'",
        )
    return name


@dataclass(frozen=True)
class MqttAddress:
    """The parts of an edgeloop MQTT topic."""

    site: str
    device: str
    stream: Stream

    @property
    def topic(self) -> str:
        """The publish topic for this address."""
        return f"{MQTT_ROOT}/{self.site}/{self.device}/{self.stream.value}"


def mqtt_topic(site: str, device: str, stream: Stream | str) -> str:
    """Build the publish topic for a device's stream, validating every part."""
    try:
        s = Stream(stream)
    except ValueError as exc:
        raise TopicError(
            f"unknown stream {stream!r}", hint=f"use one of {[x.value for x in Stream]}"
        ) from exc
    return MqttAddress(check_id(site, what="site"), check_id(device, what="device"), s).topic


def parse_mqtt_topic(topic: str) -> MqttAddress:
    """Split an edgeloop MQTT topic into site, device and stream.

    Raises:
        TopicError: if the topic is not under ``edgeloop/v1`` or a part is invalid.
    """
    prefix = MQTT_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} is not under {MQTT_ROOT!r}", where=topic)
    parts = topic[len(prefix) :].split("/", 2)
    if len(parts) != 3:
        raise TopicError(
            f"topic {topic!r} does not have the form {MQTT_ROOT}/site/device/stream", where=topic
        )
    site, device, stream = parts
    try:
        s = Stream(stream)
    except ValueError as exc:
        raise TopicError(
            f"unknown stream {stream!r}",
            where=topic,
            hint=f"known streams: {[x.value for x in Stream]}",
        ) from exc
    return MqttAddress(check_id(site, what="site"), check_id(device, what="device"), s)


def mqtt_filter(stream: Stream | str, *, site: str = "+", device: str = "+") -> str:
    """Build a subscription filter; ``+`` matches every site or device."""
    s = Stream(stream)
    if site != "+":
        check_id(site, what="site")
    if device != "+":
        check_id(device, what="device")
    return f"{MQTT_ROOT}/{site}/{device}/{s.value}"


def shared_filter(group: str, topic_filter: str) -> str:
    """Wrap a filter in an MQTT v5 shared subscription for ``group``."""
    if not _SHARE_GROUP_RE.match(group):
        raise TopicError(f"shared subscription group {group!r} is not valid")
    return f"$share/{group}/{topic_filter}"
