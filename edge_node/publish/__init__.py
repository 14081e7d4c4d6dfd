"""MQTT v5 publisher: drains the outbox to the broker with at-least-once delivery."""

from edge_node.publish.client import PublisherStats
from edge_node.publish.errors import PublishError
from edge_node.publish.mqtt import Publisher
from edge_node.publish.status import StatusFactory, StatusState, basic_status

__all__ = [
    "PublishError",
    "Publisher",
    "PublisherStats",
    "StatusFactory",
    "StatusState",
    "basic_status",
]
