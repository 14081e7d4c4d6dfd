"""The outbox's in-memory figures: bytes and rows per class, evictions."""

from __future__ import annotations

__all__ = ["Counters"]

from dataclasses import dataclass, field, replace

from edge_node.outbox.priorities import Priority


@dataclass
class Counters:
    """In-memory figures, kept in step with the file inside each transaction."""

    bytes_by_priority: dict[Priority, int] = field(
        default_factory=lambda: dict.fromkeys(Priority, 0)
    )
    depth: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: {p.label: 0 for p in Priority})
    evicted_bytes: dict[str, int] = field(default_factory=lambda: {p.label: 0 for p in Priority})
    rejected: dict[str, int] = field(default_factory=lambda: {p.label: 0 for p in Priority})

    def copy(self) -> Counters:
        """A deep copy, to restore after a rolled-back transaction."""
        return replace(
            self,
            bytes_by_priority=dict(self.bytes_by_priority),
            evictions=dict(self.evictions),
            evicted_bytes=dict(self.evicted_bytes),
            rejected=dict(self.rejected),
        )
