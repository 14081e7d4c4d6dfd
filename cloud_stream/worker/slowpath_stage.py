"""The slow path's blocking work: decode frames, run the teacher, build verdicts.

Runs in a thread (onnxruntime and OpenCV release the GIL) so the worker's event
loop keeps consuming. One call handles one micro-batch; frames of different
edge models go to their own teachers.
"""

from __future__ import annotations

__all__ = ["Judged", "SlowPath"]

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud_stream.slowpath.registry import ANY_MODEL, ModelRegistry
from cloud_stream.slowpath.teacher import CorruptFrame, Teacher
from cloud_stream.slowpath.verdicts import build_verdict
from cloud_stream.worker.config import SlowPathConfig
from cloud_stream.worker.records import Record
from pipeline.errors import EdgeloopError
from pipeline.modelpkg import ModelPackage
from pipeline.schemas import FrameMetaV1, ModelRef, VerdictV1

logger = logging.getLogger(__name__)

_ANY_STANDIN = "any-other-model"


@dataclass(frozen=True)
class Judged:
    """The outcome for one frame: a verdict, or why it has none (a dead letter)."""

    record: Record
    meta: FrameMetaV1
    verdict: VerdictV1 | None = None
    reason: str | None = None
    detail: str = ""


class SlowPath:
    """Teachers per edge model, loaded on first use and kept."""

    def __init__(self, config: SlowPathConfig, registry: ModelRegistry):
        self._config = config
        self._registry = registry
        self._teachers: dict[str, Teacher] = {}
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        """onnxruntime threads per teacher run: the cores shared by the concurrent batches."""
        if self._config.threads:
            return self._config.threads
        return max(1, (os.cpu_count() or 1) // self._config.concurrency)

    def preload(self) -> None:
        """Load every configured teacher now, so a bad package fails the start, not frames.

        Checks each teacher against the known versions of its edge model (labels).
        """
        refs = self._registry.refs()
        for edge_name in self._config.teachers:
            known = [r for r in refs if r.name == edge_name]
            # '*' is not a model name: stand in for it with a name the map does not hold.
            name = _ANY_STANDIN if edge_name == ANY_MODEL else edge_name
            for ref in known or [ModelRef(name=name, version="0.0.0", sha256="0" * 64)]:
                self._load(self._registry.teacher_for(ref, self._config.teachers), edge_name)

    def teacher(self, meta: FrameMetaV1) -> Teacher:
        """The teacher for frames of ``meta.model`` (raises a clear error if none)."""
        package = self._registry.teacher_for(meta.model, self._config.teachers)
        return self._load(package, meta.model.name)

    def _load(self, package: ModelPackage, edge_name: str) -> Teacher:
        key = str(package.path)
        with self._lock:
            found = self._teachers.get(key)
            if found is None:
                found = Teacher(package, threads=self.threads, batch_size=self._config.batch_size)
                self._teachers[key] = found
                logger.info(
                    "teacher %s %s loaded for edge model %s",
                    package.manifest.name,
                    package.manifest.version,
                    edge_name,
                )
        return found

    def judge(self, frames: Sequence[tuple[Record, FrameMetaV1]]) -> list[Judged]:
        """Verdicts for a micro-batch, in input order."""
        out: list[Judged | None] = [None] * len(frames)
        groups: dict[int, tuple[Teacher, list[int], list[np.ndarray]]] = {}
        for i, (record, meta) in enumerate(frames):
            try:
                teacher = self.teacher(meta)
                image = teacher.decode(record.value, width=meta.width, height=meta.height)
            except CorruptFrame as exc:
                out[i] = Judged(record, meta, reason="corrupt_frame", detail=str(exc))
                continue
            except EdgeloopError as exc:
                out[i] = Judged(record, meta, reason="processing_error", detail=str(exc))
                continue
            _, idx, images = groups.setdefault(id(teacher), (teacher, [], []))
            idx.append(i)
            images.append(image)
        for teacher, idx, images in groups.values():
            batch = teacher.classify(images)
            for i, pred in zip(idx, batch, strict=True):
                record, meta = frames[i]
                try:
                    verdict = build_verdict(
                        meta, teacher.ref, pred.label, pred.score, pred.probs, batch.latency_ms
                    )
                except ValueError as exc:  # pydantic: e.g. a label that is not a valid label
                    out[i] = Judged(record, meta, reason="processing_error", detail=str(exc))
                    continue
                out[i] = Judged(record, meta, verdict=verdict)
        return [j for j in out if j is not None]
