"""Shared fixtures: sample messages for unit tests. Service fixtures are in integration/."""

from __future__ import annotations

import pytest

from pipeline.schemas import FrameMetaV1, ModelRef, ResultV1, new_id, now_ns


@pytest.fixture
def model_ref() -> ModelRef:
    return ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)


@pytest.fixture
def result_factory(model_ref: ModelRef):
    seq = iter(range(1_000_000))

    def make(**overrides: object) -> ResultV1:
        fields: dict[str, object] = {
            "id": new_id(),
            "site": "plant-a",
            "device": "cam-01",
            "seq": next(seq),
            "ts": now_ns(),
            "model": model_ref,
            "task": "classify",
            "source": "cam0",
            "label": "ok",
            "score": 0.97,
            "route": "confident",
            "latency_ms": 1.4,
        }
        fields.update(overrides)
        return ResultV1(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
def frame_meta_factory(model_ref: ModelRef):
    """Metadata of an uploaded frame; ``size`` and anything else via keywords."""

    def make(**overrides: object) -> FrameMetaV1:
        fields: dict[str, object] = {
            "id": new_id(),
            "site": "plant-a",
            "device": "cam-01",
            "seq": 1,
            "ts": now_ns(),
            "model": model_ref,
            "source": "cam0",
            "result_id": new_id(),
            "reason": "uncertain",
            "label": "scratch",
            "score": 0.5,
            "width": 640,
            "height": 480,
            "phash": "0123456789abcdef",
        }
        fields.update(overrides)
        return FrameMetaV1(**fields)  # type: ignore[arg-type]

    return make
