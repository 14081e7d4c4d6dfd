"""Retraining datasets: a pool of teacher-labelled frames, human corrections, and
immutable image-folder versions that ``edgeloop models train`` reads.

The cloud worker calls :meth:`SampleWriter.add` for every kept frame; operators
run ``edgeloop datasets snapshot|list|show|import-corrections|stats``.
"""

from __future__ import annotations

__all__ = [
    "CollectConfig",
    "CorrectionsError",
    "CorrectionsReport",
    "DatasetConfig",
    "DatasetError",
    "DatasetVersion",
    "FsspecStore",
    "LocalStore",
    "PoolEntry",
    "PoolStats",
    "SampleMeta",
    "SampleRecord",
    "SampleWriter",
    "SplitConfig",
    "Store",
    "import_corrections",
    "list_versions",
    "load_corrections",
    "load_version",
    "open_store",
    "pool_stats",
    "read_pool",
    "skip_reason",
    "snapshot",
    "split_of",
]

from cloud_stream.datasets.config import CollectConfig, DatasetConfig, SplitConfig
from cloud_stream.datasets.corrections import (
    CorrectionsError,
    CorrectionsReport,
    import_corrections,
    load_corrections,
)
from cloud_stream.datasets.pool import PoolEntry, SampleWriter, read_pool
from cloud_stream.datasets.sample import SampleMeta, skip_reason
from cloud_stream.datasets.snapshot import (
    DatasetVersion,
    PoolStats,
    SampleRecord,
    list_versions,
    load_version,
    pool_stats,
    snapshot,
    split_of,
)
from cloud_stream.datasets.store import DatasetError, FsspecStore, LocalStore, Store, open_store
