"""The SQLite side of the outbox: opening the file, its schema, batched row access."""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "StoredState",
    "Synchronous",
    "delete_rows",
    "fetch_messages",
    "load_state",
    "open_database",
    "transaction",
]

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_node.outbox.errors import OutboxError
from edge_node.outbox.messages import OutboxMessage, decode_properties
from edge_node.outbox.priorities import Priority
from pipeline.topics import Stream

Synchronous = Literal["NORMAL", "FULL"]

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    properties TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_seq ON messages (seq, id);
CREATE INDEX IF NOT EXISTS messages_by_eviction ON messages (priority, seq, id);
"""
# Lists of ids go into IN (...) in chunks, well under SQLite's variable limit.
_CHUNK = 500


def open_database(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """Open (creating) the outbox file in WAL mode, locked for this process alone.

    Raises:
        OutboxError: if the file cannot be opened, refuses WAL, or another
            process holds it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=2.0)
    except (OSError, sqlite3.Error) as exc:
        raise OutboxError(f"cannot open the outbox: {exc}", where=str(path)) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(
                f"SQLite refused WAL mode (got {mode!r})",
                where=str(path),
                hint="put the outbox on a local file system",
            )
        conn.execute(f"PRAGMA synchronous={synchronous}")
        # One process per file: a second service for the same device would reuse seqs
        # and send every row twice. The kernel drops the lock when a process dies.
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("BEGIN IMMEDIATE")
        conn.executescript(_SCHEMA)  # commits the BEGIN above; the lock stays
    except sqlite3.Error as exc:
        conn.close()
        locked = "locked" in str(exc)
        raise OutboxError(
            f"cannot use the outbox: {exc}",
            where=str(path),
            hint="another process holds this outbox; stop it first" if locked else None,
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


@dataclass(frozen=True)
class StoredState:
    """What an outbox file holds, read once at open."""

    seq_reserved: int
    max_seq: int
    by_priority: dict[Priority, tuple[int, int]]  # priority -> (bytes, rows)


def load_state(conn: sqlite3.Connection, device: str, where: str, first_seq: int) -> StoredState:
    """Check that the file belongs to ``device`` (claiming a new file) and read its state.

    Args:
        conn: The open database.
        device: The device opening it.
        where: The file, for error messages.
        first_seq: Where the sequence of a new file starts.

    Raises:
        OutboxError: for a file of another device or another schema version.
    """
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if not meta:
        meta = {"schema": SCHEMA_VERSION, "device": device, "seq_reserved": str(first_seq)}
        with transaction(conn):
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
    if meta.get("device") != device:
        raise OutboxError(
            f"this outbox belongs to device {meta.get('device')!r}, not {device!r}",
            where=where,
            hint="give every device its own outbox file",
        )
    if meta.get("schema") != SCHEMA_VERSION:
        raise OutboxError(
            f"outbox schema {meta.get('schema')!r} is not {SCHEMA_VERSION!r}", where=where
        )
    by_priority = {
        Priority(prio): (int(total), int(count))
        for prio, total, count in conn.execute(
            "SELECT priority, SUM(size), COUNT(*) FROM messages GROUP BY priority"
        )
    }
    max_seq = conn.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
    return StoredState(int(meta["seq_reserved"]), int(max_seq or 0), by_priority)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def delete_rows(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[Priority, int]]:
    """Delete rows by id; return the (priority, size) of those that existed."""
    out: list[tuple[Priority, int]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            f"DELETE FROM messages WHERE id IN ({marks}) RETURNING priority, size",  # noqa: S608
            chunk,
        )
        out.extend((Priority(prio), int(size)) for prio, size in cur.fetchall())
    return out


def fetch_messages(conn: sqlite3.Connection, ids: list[int]) -> list[OutboxMessage]:
    """Read whole rows by id, in ``seq`` order."""
    rows: list[tuple[int, int, str, int, bytes, str | None, int]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            "SELECT id, seq, stream, priority, payload, properties, created_ns"  # noqa: S608
            f" FROM messages WHERE id IN ({marks})",
            chunk,
        )
        rows.extend(cur.fetchall())
    rows.sort(key=lambda r: (r[1], r[0]))
    return [
        OutboxMessage(
            row_id=int(r[0]),
            seq=int(r[1]),
            stream=Stream(r[2]),
            priority=Priority(r[3]),
            payload=bytes(r[4]),
            properties=decode_properties(r[5]),
            created_ns=int(r[6]),
        )
        for r in rows
    ]
