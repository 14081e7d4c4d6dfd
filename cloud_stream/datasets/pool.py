"""The pool: every sample collected so far, one JPEG and one metadata file per frame id.

Layout: ``pool/<shard>/<frame_id>.jpg`` then ``pool/<shard>/<frame_id>.json``, where
``shard`` is two hex digits of a hash of the id (256 folders, so none grows huge).
The metadata is written last and exclusively: a sample exists once its ``.json``
does, and a crash before that leaves nothing visible (a replay writes it again).
"""

from __future__ import annotations

__all__ = ["PoolEntry", "SampleWriter", "jpeg_key", "meta_key", "pool_ids", "read_pool"]

import hashlib
import logging
import threading
from collections import Counter
from typing import Literal

from pydantic import Field, ValidationError

from cloud_stream.datasets.config import DatasetConfig
from cloud_stream.datasets.sample import SampleMeta, skip_reason
from cloud_stream.datasets.store import DatasetError, Store, open_store
from pipeline.schemas.base import Sha256, StrictModel, TimestampNs, now_ns

logger = logging.getLogger(__name__)

POOL = "pool"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _shard(frame_id: str) -> str:
    return hashlib.blake2b(frame_id.encode(), digest_size=1).hexdigest()


def jpeg_key(frame_id: str) -> str:
    """Key of a sample's JPEG in the pool."""
    return f"{POOL}/{_shard(frame_id)}/{frame_id}.jpg"


def meta_key(frame_id: str) -> str:
    """Key of a sample's metadata in the pool."""
    return f"{POOL}/{_shard(frame_id)}/{frame_id}.json"


class PoolEntry(StrictModel):
    """The metadata file of one pooled sample."""

    v: Literal[1] = 1
    sample: SampleMeta
    added_ns: TimestampNs = Field(description="When the sample entered the pool, UTC ns")
    jpeg_bytes: int = Field(ge=1, description="Size of the JPEG")
    jpeg_sha256: Sha256 = Field(description="SHA-256 of the JPEG")


class SampleWriter:
    """Adds samples to the pool; safe to share between threads.

    Args:
        config: Dataset settings (where, and which samples to keep).
        store: Storage to use instead of the one ``config`` names (tests).
    """

    def __init__(self, config: DatasetConfig, *, store: Store | None = None):
        self.config = config
        self.store = store if store is not None else open_store(config)
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._counts: Counter[str] = Counter()

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes so far: ``added``, ``duplicate`` and one per :func:`skip_reason`."""
        with self._lock:
            return dict(self._counts)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def contains(self, frame_id: str) -> bool:
        """Whether frame ``frame_id`` is in the pool."""
        return self.store.exists(meta_key(frame_id))

    def add(self, jpeg: bytes, meta: SampleMeta) -> bool:
        """Store one frame and its metadata, unless the policy skips it or it is there.

        Idempotent: the same frame id again (an at-least-once replay) returns False
        and changes nothing; so does a call while another thread is adding that frame
        (if that one fails, it raises, and the replay of that message adds the frame).
        Blocking I/O: call it from a thread in async code.

        Returns:
            True when the sample was added now.

        Raises:
            DatasetError: ``jpeg`` is not a JPEG, or the storage failed.
        """
        reason = skip_reason(meta, self.config)
        if reason is not None:
            self._count(reason)
            return False
        if not jpeg.startswith(_JPEG_MAGIC):
            raise DatasetError(
                "the frame is not a JPEG (no FF D8 FF start marker)",
                where=f"frame {meta.frame_id}",
                hint="pass the encoded frame bytes as received from Kafka",
            )
        frame_id = meta.frame_id
        with self._lock:
            if frame_id in self._inflight:  # the same frame on another thread right now
                self._counts["duplicate"] += 1
                return False
            self._inflight.add(frame_id)
        try:
            if self.contains(frame_id):
                added = False
            else:
                entry = PoolEntry(
                    sample=meta,
                    added_ns=now_ns(),
                    jpeg_bytes=len(jpeg),
                    jpeg_sha256=hashlib.sha256(jpeg).hexdigest(),
                )
                self.store.put(jpeg_key(frame_id), jpeg)
                added = self.store.put(
                    meta_key(frame_id), entry.model_dump_json().encode(), exclusive=True
                )
        finally:
            with self._lock:
                self._inflight.discard(frame_id)
        self._count("added" if added else "duplicate")
        return added


def pool_ids(store: Store) -> set[str]:
    """Frame ids of every sample in the pool (without reading them)."""
    return {k.rsplit("/", 1)[-1][:-5] for k in store.walk(POOL) if k.endswith(".json")}


def read_pool(store: Store) -> list[PoolEntry]:
    """Every sample of the pool, sorted by capture time then frame id.

    Unreadable metadata and samples whose JPEG is missing are logged and left out.
    """
    keys = store.walk(POOL)
    present = set(keys)
    entries: list[PoolEntry] = []
    for key in keys:
        if not key.endswith(".json"):
            continue
        try:
            entry = PoolEntry.model_validate_json(store.get(key))
        except (ValidationError, DatasetError) as exc:
            logger.warning("skipping unreadable sample %s: %s", store.where(key), exc)
            continue
        if jpeg_key(entry.sample.frame_id) not in present:
            logger.warning("skipping sample %s: its JPEG is missing", store.where(key))
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.sample.ts, e.sample.frame_id))
    return entries
