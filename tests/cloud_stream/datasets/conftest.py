"""Fixtures of the dataset tests: real JPEG bytes, sample metadata, a config per backend."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from cloud_stream.datasets import DatasetConfig, SampleMeta
from pipeline.schemas import ModelRef, new_id

EDGE = ModelRef(name="conveyor-int8", version="1.2.0", sha256="ab" * 32)
TEACHER = ModelRef(name="conveyor-teacher", version="1.0.0", sha256="cd" * 32)
_seq = itertools.count(1)


def jpeg(seed: int = 0, shape: tuple[int, int] = (24, 32)) -> bytes:
    """A real JPEG of a small random image."""
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (*shape, 3), np.uint8))
    assert ok
    return bytes(buf)


def phash_of(n: int) -> str:
    """A 64-bit hash far from every other ``phash_of(m)``: n spread over the bits."""
    h = 0
    for bit in range(8):
        if n >> bit & 1:
            h |= 0xFF << (8 * bit)
    return f"{h:016x}"


def meta(**overrides: object) -> SampleMeta:
    """Sample metadata of an uncertain frame the teacher labels 'dent' with 0.9."""
    fields: dict[str, object] = {
        "frame_id": new_id(),
        "result_id": new_id(),
        "verdict_id": new_id(),
        "site": "plant-a",
        "device": "cam-01",
        "source": "cam0",
        "line": "line-1",
        "ts": 1_700_000_000_000_000_000 + next(_seq),
        "edge_model": EDGE,
        "edge_label": "ok",
        "edge_score": 0.55,
        "teacher_model": TEACHER,
        "teacher_label": "dent",
        "teacher_score": 0.9,
        "agree": False,
        "reason": "uncertain",
        "phash": f"{uuid.uuid4().int & (2**64 - 1):016x}",  # far from any other
        "width": 32,
        "height": 24,
    }
    fields.update(overrides)
    return SampleMeta(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "memory"])
def config(request: pytest.FixtureRequest, tmp_path) -> Iterator[DatasetConfig]:
    """A dataset in a fresh local folder, or under a fresh memory:// prefix."""
    if request.param == "local":
        yield DatasetConfig(root=str(tmp_path / "datasets"))
        return
    import fsspec

    root = f"memory://edgeloop-test-{uuid.uuid4().hex}"
    yield DatasetConfig(root=root)
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def local_config(tmp_path) -> DatasetConfig:
    """A dataset in a fresh local folder."""
    return DatasetConfig(root=str(tmp_path / "datasets"))
