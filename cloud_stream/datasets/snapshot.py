"""Immutable dataset versions in the image-folder layout ``edgeloop models train`` reads.

``versions/v0001/{train,val,test}/<label>/<frame_id>.jpg``, ``dataset.json`` (the
label order) and ``manifest.json`` (counts and per-sample provenance), written last:
a version folder without a manifest is incomplete, ignored by :func:`list_versions`
and deleted by the next :func:`snapshot`. A version is never written into again.
"""

from __future__ import annotations

__all__ = [
    "DatasetVersion",
    "PoolStats",
    "SampleRecord",
    "dedup",
    "list_versions",
    "load_version",
    "pool_stats",
    "snapshot",
    "split_of",
]

import hashlib
import json
import logging
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud_stream.datasets.config import DatasetConfig, SplitConfig
from cloud_stream.datasets.corrections import load_corrections
from cloud_stream.datasets.pool import PoolEntry, jpeg_key, read_pool
from cloud_stream.datasets.store import DatasetError, Store, open_store

logger = logging.getLogger(__name__)

VERSIONS = "versions"
MANIFEST = "manifest.json"
LOCK = f"{VERSIONS}/.snapshot.lock"
#: A lock older than this was left by a crashed snapshot and is taken over.
LOCK_STALE_S = 6 * 3600
#: Temporary files older than this were left by crashed writers.
TEMP_STALE_S = 3600
SPLITS = ("train", "val", "test")
_VERSION = re.compile(r"^v(\d{4,})$")

Split = Literal["train", "val", "test"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SampleRecord(_Model):
    """Provenance of one sample of a version."""

    frame_id: str
    result_id: str
    verdict_id: str | None
    site: str
    device: str
    source: str
    line: str | None
    ts: int = Field(description="Capture time, UTC ns")
    edge_model: str = Field(description="Edge model name@version")
    edge_label: str
    edge_score: float
    teacher_model: str = Field(description="Teacher model name@version")
    teacher_label: str
    teacher_score: float
    reason: str
    label: str = Field(description="The label the sample is filed under")
    label_source: Literal["teacher", "human"]
    split: Split
    path: str = Field(description="Image path inside the version folder")


class DatasetVersion(_Model):
    """One immutable dataset version: the content of its ``manifest.json``."""

    version: str
    name: str = Field(description="Dataset name")
    created: str = Field(description="UTC, ISO 8601")
    note: str = ""
    parent: str | None = Field(description="The previous version, if any")
    labels: list[str] = Field(description="Label order (dataset.json)")
    counts: dict[str, dict[str, int]] = Field(description="split -> label -> samples")
    total: int
    pool_size: int = Field(description="Samples in the pool when the version was made")
    duplicates_removed: int
    duplicates: list[tuple[str, str]] = Field(description="(dropped frame id, kept frame id)")
    corrections_applied: int = Field(description="Samples whose label came from a human")
    settings: dict[str, object] = Field(description="dedup_hamming, split, min_teacher_score")
    samples: list[SampleRecord]
    location: str = Field(default="", exclude=True, description="Where the version folder is")

    @property
    def number(self) -> int:
        """The version number (``v0003`` -> 3)."""
        return int(self.version[1:])


def split_of(frame_id: str, split: SplitConfig) -> Split:
    """Split of a frame: a hash of its id, so it stays put across versions."""
    digest = hashlib.sha256(frame_id.encode()).digest()
    x = int.from_bytes(digest[:8], "big") / 2**64
    if x < split.train:
        return "train"
    return "val" if x < split.train + split.val else "test"


def dedup(
    items: list[tuple[str, str, str]], max_distance: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Near-duplicate removal: greedy, in the given order, per label.

    Args:
        items: ``(label, phash hex, frame id)`` in priority order (earliest first).
        max_distance: Largest Hamming distance between two hashes that are duplicates.

    Returns:
        Indexes of the kept items, and ``(dropped, kept)`` index pairs.
    """
    kept: list[int] = []
    dropped: list[tuple[int, int]] = []
    by_label: dict[str, tuple[np.ndarray, list[int]]] = {}
    for i, (label, phash, _) in enumerate(items):
        hashes, owners = by_label.setdefault(label, (np.zeros(64, np.uint64), []))
        h = np.uint64(int(phash, 16))
        n = len(owners)
        if n:
            dist = np.bitwise_count(hashes[:n] ^ h)
            j = int(np.argmin(dist))
            if int(dist[j]) <= max_distance:
                dropped.append((i, owners[j]))
                continue
        if n == len(hashes):
            hashes = np.concatenate([hashes, np.zeros(n, np.uint64)])
            by_label[label] = (hashes, owners)
        hashes[n] = h
        owners.append(i)
        kept.append(i)
    return kept, dropped


@contextmanager
def _locked(store: Store) -> Iterator[None]:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    if not store.put(LOCK, json.dumps(info).encode(), exclusive=True):
        try:
            held = json.loads(store.get(LOCK))
            age = time.time() - float(held["started"])
        except (DatasetError, ValueError, KeyError, TypeError):
            held, age = {}, float(LOCK_STALE_S)
        if age < LOCK_STALE_S:
            raise DatasetError(
                f"another snapshot is running (pid {held.get('pid')} on {held.get('host')}, "
                f"started {age:.0f} s ago)",
                where=store.where(LOCK),
                hint="wait for it; if it crashed, delete the lock file",
            )
        logger.warning("taking over a stale snapshot lock %s", store.where(LOCK))
        store.put(LOCK, json.dumps(info).encode())
    try:
        yield
    finally:
        store.remove(LOCK)


def _version_dirs(store: Store) -> tuple[list[str], list[str]]:
    """(complete, incomplete) version folder names, by number."""
    names = sorted(
        (n for n in store.children(VERSIONS) if _VERSION.match(n)), key=lambda n: int(n[1:])
    )
    complete = [n for n in names if store.exists(f"{VERSIONS}/{n}/{MANIFEST}")]
    return complete, [n for n in names if n not in complete]


def _record(entry: PoolEntry, label: str, human: bool, split: Split) -> SampleRecord:
    s = entry.sample
    return SampleRecord(
        frame_id=s.frame_id,
        result_id=s.result_id,
        verdict_id=s.verdict_id,
        site=s.site,
        device=s.device,
        source=s.source,
        line=s.line,
        ts=s.ts,
        edge_model=f"{s.edge_model.name}@{s.edge_model.version}",
        edge_label=s.edge_label,
        edge_score=s.edge_score,
        teacher_model=f"{s.teacher_model.name}@{s.teacher_model.version}",
        teacher_label=s.teacher_label,
        teacher_score=s.teacher_score,
        reason=s.reason,
        label=label,
        label_source="human" if human else "teacher",
        split=split,
        path=f"{split}/{label}/{s.frame_id}.jpg",
    )


def _labelled(config: DatasetConfig, store: Store) -> tuple[list[PoolEntry], list[str], set[str]]:
    """Pool entries with their labels (corrections applied) and the corrected frame ids."""
    entries = read_pool(store)
    corrections = load_corrections(store)
    labels = [corrections.get(e.sample.frame_id, e.sample.teacher_label) for e in entries]
    human = {e.sample.frame_id for e in entries if e.sample.frame_id in corrections}
    return entries, labels, human


def snapshot(
    config: DatasetConfig, note: str = "", *, store: Store | None = None
) -> DatasetVersion:
    """Freeze the pool into the next version.

    Steps: take every pool sample, apply the corrections, drop near-duplicates,
    split by a hash of the frame id, write the images, then the manifest.

    Raises:
        DatasetError: the pool is empty, another snapshot is running, or storage failed.
    """
    store = store if store is not None else open_store(config)
    with _locked(store):
        complete, incomplete = _version_dirs(store)
        for name in incomplete:
            logger.warning("deleting incomplete version %s", store.where(f"{VERSIONS}/{name}"))
            store.remove(f"{VERSIONS}/{name}")
        cleaned = store.clean_temp("pool", TEMP_STALE_S)
        if cleaned:
            logger.info("deleted %d temporary files left by crashed writers", cleaned)
        entries, labels, human = _labelled(config, store)
        if not entries:
            raise DatasetError(
                "the pool is empty: nothing to snapshot",
                where=store.where("pool"),
                hint="run the cloud worker with datasets enabled, or check datasets.root/name",
            )
        keys = [
            (lab, e.sample.phash, e.sample.frame_id) for e, lab in zip(entries, labels, strict=True)
        ]
        kept, dropped = dedup(keys, config.dedup_hamming)
        records = []
        for i in kept:
            frame_id = entries[i].sample.frame_id
            split = split_of(frame_id, config.split)
            records.append(_record(entries[i], labels[i], frame_id in human, split))
        number = int(complete[-1][1:]) + 1 if complete else 1
        version = f"v{number:04d}"
        base = f"{VERSIONS}/{version}"
        if not store.claim_dir(base):
            raise DatasetError(
                "the version folder exists already; versions are never written into",
                where=store.where(base),
            )
        for rec in records:
            store.copy(jpeg_key(rec.frame_id), f"{base}/{rec.path}")
        present = sorted({r.label for r in records})
        order = list(config.labels) if config.labels is not None else present
        order += [lab for lab in present if lab not in order]
        counts = {s: dict.fromkeys(order, 0) for s in SPLITS}
        for rec in records:
            counts[rec.split][rec.label] += 1
        result = DatasetVersion(
            version=version,
            name=config.name,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            note=note,
            parent=complete[-1] if complete else None,
            labels=order,
            counts=counts,
            total=len(records),
            pool_size=len(entries),
            duplicates_removed=len(dropped),
            duplicates=[(keys[a][2], keys[b][2]) for a, b in dropped],
            corrections_applied=sum(r.label_source == "human" for r in records),
            settings={
                "dedup_hamming": config.dedup_hamming,
                "split": config.split.model_dump(),
                "min_teacher_score": config.min_teacher_score,
            },
            samples=records,
            location=store.where(base),
        )
        meta = {"labels": order, "generator": "edgeloop-datasets", "version": version}
        store.put(f"{base}/dataset.json", json.dumps(meta, indent=1).encode(), exclusive=True)
        store.put(f"{base}/{MANIFEST}", result.model_dump_json(indent=1).encode(), exclusive=True)
    logger.info(
        "dataset %s %s: %d samples (%d duplicates removed, %d corrected)",
        config.name,
        version,
        result.total,
        result.duplicates_removed,
        result.corrections_applied,
    )
    return result


def _load(store: Store, name: str) -> DatasetVersion:
    key = f"{VERSIONS}/{name}/{MANIFEST}"
    try:
        version = DatasetVersion.model_validate_json(store.get(key))
    except ValidationError as exc:
        raise DatasetError(f"damaged manifest: {exc}", where=store.where(key)) from exc
    return version.model_copy(update={"location": store.where(f"{VERSIONS}/{name}")})


def list_versions(config: DatasetConfig, *, store: Store | None = None) -> list[DatasetVersion]:
    """Every complete version, oldest first."""
    store = store if store is not None else open_store(config)
    return [_load(store, name) for name in _version_dirs(store)[0]]


def load_version(
    config: DatasetConfig, version: str | int, *, store: Store | None = None
) -> DatasetVersion:
    """One complete version: ``v0003``, ``v3``, ``3`` or ``latest``.

    Raises:
        DatasetError: no such complete version (the message lists those there are).
    """
    store = store if store is not None else open_store(config)
    complete = _version_dirs(store)[0]
    text = str(version).strip().lower()
    if text == "latest":
        name = complete[-1] if complete else ""
    else:
        digits = text[1:] if text.startswith("v") else text
        name = f"v{int(digits):04d}" if digits.isdigit() else text
    if name not in complete:
        raise DatasetError(
            f"no version {version!r}",
            where=store.where(VERSIONS),
            hint=f"versions: {', '.join(complete)}" if complete else "run a snapshot first",
        )
    return _load(store, name)


class PoolStats(_Model):
    """What the pool holds now (labels with the corrections applied)."""

    total: int
    by_label: dict[str, int]
    by_reason: dict[str, int]
    by_device: dict[str, int]
    corrected: int


def pool_stats(config: DatasetConfig, *, store: Store | None = None) -> PoolStats:
    """Counts of the pool per label, reason and device."""
    store = store if store is not None else open_store(config)
    entries, labels, human = _labelled(config, store)

    def count(values: list[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return PoolStats(
        total=len(entries),
        by_label=count(labels),
        by_reason=count([e.sample.reason for e in entries]),
        by_device=count([e.sample.device for e in entries]),
        corrected=len(human),
    )
