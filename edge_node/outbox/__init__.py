"""Durable outbox: SQLite WAL, per-device sequence numbers, priority eviction under a byte cap."""

from edge_node.outbox.errors import OutboxError
from edge_node.outbox.messages import DROPPED, OutboxItem, OutboxMessage
from edge_node.outbox.priorities import Priority, default_priority
from edge_node.outbox.sqlite import Synchronous
from edge_node.outbox.store import Outbox

__all__ = [
    "DROPPED",
    "Outbox",
    "OutboxError",
    "OutboxItem",
    "OutboxMessage",
    "Priority",
    "Synchronous",
    "default_priority",
]
