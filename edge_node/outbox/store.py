"""A durable, bounded outbox: SQLite in WAL mode, evicting by priority when full.

Every message the edge sends upstream goes through here first. A row leaves
only when the publisher acknowledges it (after the broker's PUBACK) or when the
byte cap evicts it, and every eviction is counted.

Durability: the database runs in WAL mode. With ``synchronous="NORMAL"`` (the
default) a commit is a ``write()`` into the WAL file, which the kernel keeps
even if the process is killed (kill -9); only an OS crash or power loss can
roll back the last commits. ``synchronous="FULL"`` adds an ``fsync`` per
commit, which survives power loss too and costs one disk flush per ``put``.

Eviction rule: a message of priority ``p`` that does not fit may evict rows of
priority ``<= p`` (never ``status``), lowest priority first and the oldest
(lowest ``seq``) first within a class, so a newer frame replaces the oldest
frame. Rows are evicted only if that makes enough room; when it cannot, the
new message is the one dropped and nothing else is touched. Both are counted
in :attr:`Outbox.evictions` and :attr:`Outbox.evicted_bytes`, keyed by class.

Sequence numbers: :meth:`Outbox.next_seq` hands out numbers from blocks it
reserves on disk first, and every ``put`` raises the stored high-water mark in
its own transaction, so no number is handed out twice, even across kill -9
(gaps are fine). A new file starts at the current time in microseconds, so a
device whose outbox file was lost does not reuse the numbers of the old one.
"""

from __future__ import annotations

__all__ = ["SEQ_BLOCK", "Outbox"]

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from edge_node.outbox.counters import Counters
from edge_node.outbox.errors import OutboxError
from edge_node.outbox.messages import (
    DROPPED,
    ROW_OVERHEAD,
    OutboxItem,
    OutboxMessage,
    encode_properties,
)
from edge_node.outbox.priorities import Priority, default_priority
from edge_node.outbox.sqlite import (
    Synchronous,
    delete_rows,
    fetch_messages,
    load_state,
    open_database,
    transaction,
)
from pipeline.schemas.base import MAX_INT64
from pipeline.topics import Stream, check_id

logger = logging.getLogger(__name__)

#: How many sequence numbers one reservation on disk covers.
SEQ_BLOCK = 1024


class Outbox:
    """Durable, byte-capped, priority-evicting message store for one device.

    Thread-safe: sources put from their threads while the publisher takes and
    acknowledges from its own. One process at a time may open a file (it is
    locked exclusively), so two services can never hand out the same ``seq``.

    Args:
        path: The SQLite file; created with its folder if missing.
        max_bytes: Cap on the stored bytes (payload + properties +
            ``ROW_OVERHEAD`` per row).
        device: The device this outbox belongs to; a file of another device is
            refused.
        synchronous: ``"NORMAL"`` survives a process crash, ``"FULL"`` also
            power loss (see the module notes).

    Raises:
        OutboxError: if the file cannot be opened, is locked by another
            process, or belongs to another device.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        device: str,
        synchronous: Synchronous = "NORMAL",
    ):
        if max_bytes <= 0:
            raise OutboxError(f"max_bytes must be positive, got {max_bytes}", where=str(path))
        if synchronous not in ("NORMAL", "FULL"):
            raise OutboxError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.device = check_id(device, what="device")
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._inflight: set[int] = set()
        self._c = Counters()
        self._closed = False
        self._conn = open_database(self.path, synchronous)
        try:
            self._seq_reserved, self._seq_next = self._load()
        except BaseException:
            self._conn.close()
            raise

    # --- opening ------------------------------------------------------------------
    def _load(self) -> tuple[int, int]:
        """Check the owner, load the counters; return (seq reserved, next seq)."""
        stored = load_state(self._conn, self.device, str(self.path), time.time_ns() // 1000)
        for prio, (total, count) in stored.by_priority.items():
            self._c.bytes_by_priority[prio] = total
            self._c.depth += count
        return stored.seq_reserved, max(stored.seq_reserved, stored.max_seq) + 1

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)

    def _wrap(self, exc: sqlite3.Error, what: str) -> OutboxError:
        return OutboxError(f"{what} failed: {exc}", where=str(self.path))

    # --- public API ---------------------------------------------------------------
    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the putting thread) after every put that stored a row."""
        with self._lock:
            self._listeners.append(callback)

    def next_seq(self) -> int:
        """The next per-device sequence number; never handed out twice, even after a crash."""
        with self._lock:
            self._check_open()
            if self._seq_next > self._seq_reserved:
                reserved = self._seq_next + SEQ_BLOCK - 1
                try:
                    with self._transaction():
                        self._set_reserved(reserved)
                except sqlite3.Error as exc:
                    raise self._wrap(exc, "reserving sequence numbers") from exc
                self._seq_reserved = reserved
            seq = self._seq_next
            self._seq_next += 1
            return seq

    def put(
        self,
        stream: Stream,
        payload: bytes,
        *,
        seq: int,
        properties: dict[str, str] | None = None,
        priority: Priority | None = None,
    ) -> int:
        """Store one message durably; return its row id, or :data:`DROPPED`.

        Once this returns, the message survives kill -9 of the process. When
        the outbox is full, lower-priority rows are evicted first (see the
        module notes); a message that cannot fit is dropped and counted.

        Args:
            stream: The MQTT stream it goes to.
            payload: The bytes to publish.
            seq: Its sequence number, from :meth:`next_seq`.
            properties: MQTT v5 user properties (frame metadata).
            priority: Overrides the stream's class, e.g. ``Priority.ALERT``.

        Raises:
            OutboxError: for an invalid message or a failing disk.
        """
        return self.put_many([OutboxItem(stream, payload, seq, properties, priority)])[0]

    def put_many(self, items: Sequence[OutboxItem]) -> list[int]:
        """Store several messages in one transaction (a result and its frame).

        Either all are stored or, on a crash, none; each is still subject to
        eviction on its own, so a frame may be dropped while its result is kept.
        Returns the row ids (or :data:`DROPPED`) in the order of ``items``.
        """
        rows = [self._prepare(item) for item in items]
        with self._lock:
            self._check_open()
            before, inflight_before = self._c.copy(), set(self._inflight)
            top = max((row[1] for row in rows), default=-1)
            try:
                with self._transaction():
                    ids = [self._insert(*row) for row in rows]
                    if top > self._seq_reserved:
                        self._set_reserved(top)
            except BaseException as exc:
                # Rolled back: the in-memory figures go back to what the file holds.
                self._c, self._inflight = before, inflight_before
                if isinstance(exc, sqlite3.Error):
                    raise self._wrap(exc, "storing a message") from exc
                raise
            self._seq_reserved = max(self._seq_reserved, top)
            self._seq_next = max(self._seq_next, top + 1)
            listeners = list(self._listeners) if any(ids) else []
        # Outside the lock: a listener may call back into the outbox.
        for callback in listeners:
            callback()
        return ids

    def pending(self, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` stored messages that are not in flight, in ``seq`` order."""
        with self._lock:
            return self._pending(limit)

    def take(self, limit: int) -> list[OutboxMessage]:
        """Like :meth:`pending`, and mark the returned rows in flight at once."""
        with self._lock:
            rows = self._pending(limit)
            self._inflight.update(m.row_id for m in rows)
            return rows

    def mark_inflight(self, row_ids: Iterable[int]) -> None:
        """Hide rows from :meth:`pending` until they are acked or released."""
        with self._lock:
            self._inflight.update(row_ids)

    def release(self, row_ids: Iterable[int] | None = None) -> None:
        """Make in-flight rows pending again (all of them when ``row_ids`` is None)."""
        with self._lock:
            if row_ids is None:
                self._inflight.clear()
            else:
                self._inflight.difference_update(row_ids)

    def ack(self, row_ids: Iterable[int]) -> int:
        """Delete acknowledged rows; return how many were still stored."""
        ids = list(row_ids)
        if not ids:
            return 0
        with self._lock:
            self._check_open()
            self._inflight.difference_update(ids)
            try:
                with self._transaction():
                    deleted = self._delete(ids)
            except sqlite3.Error as exc:
                raise self._wrap(exc, "acknowledging messages") from exc
            for prio, size in deleted:
                self._c.bytes_by_priority[prio] -= size
            self._c.depth -= len(deleted)
            return len(deleted)

    def discard(self, stream: Stream) -> int:
        """Delete every queued row of ``stream`` that is not in flight; return how many.

        For messages a restart makes stale: a node queues its retained ``status``
        on every change, and the publisher sends the current one on connect, so
        status rows left from an earlier run would overwrite the current state.
        """
        with self._lock:
            self._check_open()
            try:
                rows = self._conn.execute(
                    "SELECT id FROM messages WHERE stream = ?", (stream.value,)
                ).fetchall()
                ids = [int(r[0]) for r in rows if int(r[0]) not in self._inflight]
                with self._transaction():
                    deleted = self._delete(ids) if ids else []
            except sqlite3.Error as exc:
                raise self._wrap(exc, f"discarding {stream.value} messages") from exc
            for prio, size in deleted:
                self._c.bytes_by_priority[prio] -= size
            self._c.depth -= len(deleted)
            return len(deleted)

    @property
    def evictions(self) -> dict[str, int]:
        """Messages evicted or dropped for lack of room since open, by class (``frame``...)."""
        with self._lock:
            return dict(self._c.evictions)

    @property
    def evicted_bytes(self) -> dict[str, int]:
        """Bytes of the messages counted in :attr:`evictions`, by class."""
        with self._lock:
            return dict(self._c.evicted_bytes)

    @property
    def rejected(self) -> dict[str, int]:
        """New messages dropped because they could not fit (included in :attr:`evictions`)."""
        with self._lock:
            return dict(self._c.rejected)

    def depth(self) -> int:
        """Rows stored (pending and in flight)."""
        with self._lock:
            return self._c.depth

    def inflight(self) -> int:
        """Rows marked in flight."""
        with self._lock:
            return len(self._inflight)

    def bytes_used(self) -> int:
        """Bytes counted against ``max_bytes``."""
        with self._lock:
            return sum(self._c.bytes_by_priority.values())

    def close(self) -> None:
        """Checkpoint the WAL and close the file; the outbox cannot be used after."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("outbox %s: checkpoint at close failed: %s", self.path, exc)
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- internals (called with the lock held) ------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox is closed", where=str(self.path))

    def _set_reserved(self, value: int) -> None:
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'seq_reserved'", (str(value),))

    def _prepare(self, item: OutboxItem) -> tuple[Stream, int, Priority, bytes, str | None, int]:
        stream = Stream(item.stream)
        prio = default_priority(stream) if item.priority is None else Priority(item.priority)
        if isinstance(item.seq, bool) or not isinstance(item.seq, int):
            raise OutboxError(f"seq must be an int, got {type(item.seq).__name__}")
        if not 0 <= item.seq <= MAX_INT64:
            raise OutboxError(f"seq {item.seq} is outside 0..2**63-1", where="outbox.put")
        if not isinstance(item.payload, bytes | bytearray | memoryview):
            raise OutboxError(f"payload must be bytes, got {type(item.payload).__name__}")
        payload = bytes(item.payload)
        props = encode_properties(item.properties)
        size = len(payload) + (len(props.encode()) if props else 0) + ROW_OVERHEAD
        return stream, item.seq, prio, payload, props, size

    def _insert(
        self,
        stream: Stream,
        seq: int,
        prio: Priority,
        payload: bytes,
        props: str | None,
        size: int,
    ) -> int:
        if not self._make_room(prio, size):
            self._count_loss(prio, size, rejected=True)
            logger.debug("outbox full: dropped a new %s message (seq %d)", prio.label, seq)
            return DROPPED
        cur = self._conn.execute(
            "INSERT INTO messages (seq, stream, priority, size, created_ns, properties, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, stream.value, int(prio), size, time.time_ns(), props, payload),
        )
        self._c.bytes_by_priority[prio] += size
        self._c.depth += 1
        return int(cur.lastrowid or 0)

    def _make_room(self, prio: Priority, size: int) -> bool:
        """Evict rows of priority <= ``prio`` so that ``size`` more bytes fit.

        Returns False, evicting nothing, when even evicting all of them would not do.
        """
        need = sum(self._c.bytes_by_priority.values()) + size - self.max_bytes
        if need <= 0:
            return True
        classes = [p for p in Priority if p <= prio and p.evictable]
        if sum(self._c.bytes_by_priority[p] for p in classes) < need:
            return False
        victims: list[int] = []
        freed = 0
        cur = self._conn.execute(
            "SELECT id, priority, size FROM messages WHERE priority <= ? AND priority < ?"
            " ORDER BY priority, seq, id",
            (int(prio), int(Priority.STATUS)),
        )
        for row_id, _prio, victim_size in cur:
            victims.append(int(row_id))
            freed += int(victim_size)
            if freed >= need:
                break
        cur.close()
        for prio_of, victim_size in self._delete(victims):
            self._c.bytes_by_priority[prio_of] -= victim_size
            self._c.depth -= 1
            self._count_loss(prio_of, victim_size, rejected=False)
        self._inflight.difference_update(victims)
        return True

    def _delete(self, ids: list[int]) -> list[tuple[Priority, int]]:
        return delete_rows(self._conn, ids)

    def _count_loss(self, prio: Priority, size: int, *, rejected: bool) -> None:
        self._c.evictions[prio.label] += 1
        self._c.evicted_bytes[prio.label] += size
        if rejected:
            self._c.rejected[prio.label] += 1

    def _pending(self, limit: int) -> list[OutboxMessage]:
        self._check_open()
        if limit <= 0:
            return []
        # Walk the (seq, id) index without touching payloads, skipping rows in flight.
        chosen: list[int] = []
        try:
            cur = self._conn.execute("SELECT id FROM messages ORDER BY seq, id")
            for (row_id,) in cur:
                if row_id not in self._inflight:
                    chosen.append(int(row_id))
                    if len(chosen) >= limit:
                        break
            cur.close()
            return fetch_messages(self._conn, chosen)
        except sqlite3.Error as exc:
            raise self._wrap(exc, "reading pending messages") from exc
