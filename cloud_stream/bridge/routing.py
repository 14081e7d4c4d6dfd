"""Which messages a bridge instance subscribes to, forwards or only acknowledges."""

from __future__ import annotations

__all__ = ["Route", "Router", "device_slot"]

import zlib
from typing import NamedTuple

from cloud_stream.bridge.config import BridgeConfig
from pipeline.errors import TopicError
from pipeline.topics import MQTT_ROOT, MqttAddress, Stream, parse_mqtt_topic, shared_filter

_CACHE_SIZE = 65_536


def device_slot(device: str, count: int) -> int:
    """The partition slot of a device: stable across processes and machines."""
    return zlib.crc32(device.encode()) % count


class Route(NamedTuple):
    """What a topic means to this bridge, worked out once per topic."""

    addr: MqttAddress | None
    """The parsed topic; None when it is malformed (the message goes to the DLQ)."""
    label: str
    """Stream label of the ``messages_in`` metric."""
    skip: bool
    """Acknowledge without producing: OTA offers, other instances' devices."""


class Router:
    """Subscriptions and per-topic routing of one bridge instance.

    Args:
        config: The instance's settings (site, share group, partition slot).
    """

    def __init__(self, config: BridgeConfig):
        self.config = config
        self._routes: dict[str, Route] = {}

    def subscriptions(self) -> list[str]:
        """The subscription filters of this bridge (shared unless partitioned)."""
        topic_filter = f"{MQTT_ROOT}/{self.config.site}/+/#"
        if self.config.partition is not None:
            return [topic_filter]
        return [shared_filter(self.config.share_group, topic_filter)]

    def owns(self, addr: MqttAddress | None) -> bool:
        """True when this instance forwards the device of ``addr`` (always, unpartitioned)."""
        part = self.config.partition
        if part is None or part.count == 1:
            return True
        if addr is None:
            # Malformed topics go to the DLQ from slot 0 only, so they are written once.
            return part.index == 0
        return device_slot(addr.device, part.count) == part.index

    def route(self, topic: str) -> Route:
        """Parse a topic once and remember what to do with it (devices reuse topics)."""
        found = self._routes.get(topic)
        if found is None:
            try:
                addr: MqttAddress | None = parse_mqtt_topic(topic)
            except TopicError:
                addr = None
            skip = (addr is not None and addr.stream is Stream.OTA) or not self.owns(addr)
            found = Route(addr, addr.stream.value if addr is not None else "invalid", skip)
            if len(self._routes) >= _CACHE_SIZE:
                self._routes.clear()  # a flood of distinct topics must not grow memory
            self._routes[topic] = found
        return found
