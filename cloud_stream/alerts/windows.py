"""Event-time windows that fit in a Faust table: hopping counts and a duplicate filter.

Both keep plain JSON state (``to_state()`` / ``from_state()``) of bounded size, and
are driven only by the timestamps and sequence numbers passed in, so replaying a
topic rebuilds exactly the same state.
"""

from __future__ import annotations

__all__ = ["HoppingCounts", "SeqDedup"]

from typing import Any

_NS = 1_000_000_000
MAX_BUCKETS = 10_000


class HoppingCounts:
    """Counts per key over a hopping window of ``size_s``, advancing by ``step_s``.

    Events go into buckets of ``step_s`` aligned on the epoch. The window at
    ``now_ns`` is the ``size_s // step_s`` newest buckets, the last one being the
    bucket that holds ``now_ns``: roughly ``(now - size, now]``, with edges rounded
    to whole steps like a Faust hopping window.

    Memory is bounded: a bucket older than the window of the newest event seen (the
    watermark) is dropped, and an event that would fall into a dropped bucket is
    *late*: it is not counted, only added to :attr:`late`.

    Args:
        size_s: Window length, seconds; a whole multiple of ``step_s``.
        step_s: Bucket length (the hop), seconds.

    Raises:
        ValueError: If the sizes are not positive whole multiples, or the window
            would need more than 10,000 buckets.
    """

    def __init__(self, size_s: int, step_s: int) -> None:
        if step_s < 1 or size_s < step_s or size_s % step_s:
            raise ValueError(
                f"window {size_s} s must be a whole multiple (>= 1) of step {step_s} s >= 1"
            )
        if size_s // step_s > MAX_BUCKETS:
            raise ValueError(
                f"window {size_s} s / step {step_s} s needs over {MAX_BUCKETS} buckets"
            )
        self.size_s = size_s
        self.step_s = step_s
        self.late = 0
        self.high_ns: int | None = None
        self._step_ns = step_s * _NS
        self._n = size_s // step_s
        self._floor: int | None = None  # lowest bucket index still kept
        self._buckets: dict[int, dict[str, int]] = {}

    def add(self, ts_ns: int, key: str, n: int = 1) -> bool:
        """Count ``n`` events of ``key`` at event time ``ts_ns``.

        Returns:
            False when the event was late (older than the window) and ignored.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        index = ts_ns // self._step_ns
        if self._floor is not None and index < self._floor:
            self.late += n
            return False
        bucket = self._buckets.setdefault(index, {})
        bucket[key] = bucket.get(key, 0) + n
        if self.high_ns is None or ts_ns > self.high_ns:
            self.high_ns = ts_ns
            self.expire(ts_ns)
        return True

    def totals(self, now_ns: int) -> dict[str, int]:
        """Counts per key in the window ending with the bucket of ``now_ns``."""
        end = now_ns // self._step_ns
        start = end - self._n + 1
        out: dict[str, int] = {}
        for index, bucket in self._buckets.items():
            if start <= index <= end:
                for key, count in bucket.items():
                    out[key] = out.get(key, 0) + count
        return out

    def total(self, now_ns: int) -> int:
        """All events in the window at ``now_ns``, whatever their key."""
        return sum(self.totals(now_ns).values())

    def window_end_ns(self, now_ns: int) -> int:
        """Exclusive end of the window evaluated at ``now_ns`` (end of its last bucket)."""
        return (now_ns // self._step_ns + 1) * self._step_ns

    def expire(self, now_ns: int) -> None:
        """Drop the buckets that fell out of the window at ``now_ns``.

        Events older than that are late from now on.
        """
        floor = now_ns // self._step_ns - self._n + 1
        if self._floor is not None and floor <= self._floor:
            return
        self._floor = floor
        for index in [i for i in self._buckets if i < floor]:
            del self._buckets[index]

    def __len__(self) -> int:
        """Number of buckets held."""
        return len(self._buckets)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state; :meth:`from_state` rebuilds an equal object."""
        return {
            "size_s": self.size_s,
            "step_s": self.step_s,
            "high_ns": self.high_ns,
            "floor": self._floor,
            "late": self.late,
            "buckets": {
                str(i): dict(sorted(self._buckets[i].items())) for i in sorted(self._buckets)
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HoppingCounts:
        """Rebuild from :meth:`to_state` output."""
        out = cls(int(state["size_s"]), int(state["step_s"]))
        out.high_ns = None if state["high_ns"] is None else int(state["high_ns"])
        out._floor = None if state["floor"] is None else int(state["floor"])
        out.late = int(state["late"])
        out._buckets = {
            int(i): {str(k): int(v) for k, v in bucket.items()}
            for i, bucket in state["buckets"].items()
        }
        return out


class SeqDedup:
    """Drops redelivered messages by (device, seq), tolerating some reordering.

    Delivery is at least once (a worker restarted from its last committed offset
    sees messages again), and a shared MQTT subscription may reorder a device's
    messages a little. For each device this keeps the newest seq and a bit mask of
    the seqs seen among the ``span`` below it (two small values per device, however
    large ``span``): a seq seen before is a duplicate, and one ``span`` or more
    below the newest is too old to tell and is dropped too (counted in
    :attr:`stale`).

    Args:
        span: How far below a device's newest seq a message is still accepted.
    """

    def __init__(self, span: int = 128) -> None:
        if not 1 <= span <= 4096:
            raise ValueError("span must be 1 to 4096")
        self.span = span
        self.duplicates = 0
        self.stale = 0
        self._seen: dict[str, tuple[int, int]] = {}  # device -> (newest seq, mask)

    def accept(self, device: str, seq: int) -> bool:
        """Record (``device``, ``seq``); False if it was seen before or is too old."""
        entry = self._seen.get(device)
        if entry is None:
            self._seen[device] = (seq, 1)
            return True
        high, mask = entry
        if seq > high:
            mask = ((mask << (seq - high)) | 1) & ((1 << self.span) - 1)
            self._seen[device] = (seq, mask)
            return True
        back = high - seq
        if back >= self.span:
            self.stale += 1
            return False
        if mask >> back & 1:
            self.duplicates += 1
            return False
        self._seen[device] = (high, mask | 1 << back)
        return True

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state (masks as hex strings, so no integer exceeds 64 bits)."""
        return {
            "span": self.span,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "seen": {d: [h, format(m, "x")] for d, (h, m) in sorted(self._seen.items())},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeqDedup:
        """Rebuild from :meth:`to_state` output."""
        out = cls(int(state["span"]))
        out.duplicates = int(state["duplicates"])
        out.stale = int(state["stale"])
        out._seen = {str(d): (int(h), int(m, 16)) for d, (h, m) in state["seen"].items()}
        return out
