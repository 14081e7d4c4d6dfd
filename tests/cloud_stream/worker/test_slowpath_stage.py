"""The slow path's blocking stage with the built-in teacher, and the slow-path agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cloud_stream.slowpath.teacher import Teacher
from cloud_stream.worker import slowpath_stage
from cloud_stream.worker.config import CloudConfig, SlowPathConfig
from cloud_stream.worker.records import decode_frame
from cloud_stream.worker.slowpath_stage import SlowPath
from pipeline.errors import EdgeloopError
from pipeline.schemas import FrameMetaV1, ModelRef, VerdictV1, decode
from tests.cloud_stream.worker.fakes import (
    FakeEvent,
    FakeMessage,
    builtin_ref,
    harness,
    metric,
    registry,
)
from tests.cloud_stream.worker.frames import frame_meta, frame_record, jpeg

CONFIG = SlowPathConfig(threads=1, batch_size=4)
LABELS = {"ok", "scratch", "crack", "dent", "missing_feature", "contamination"}


@pytest.fixture(scope="module")
def slow() -> SlowPath:
    sp = SlowPath(CONFIG, registry())
    sp.preload()
    return sp


@pytest.fixture(scope="module")
def pictures() -> list[bytes]:
    return [jpeg(i) for i in range(6)]


def _frame(data: bytes, seq: int, **fields: Any) -> tuple[Any, FrameMetaV1]:
    fields.setdefault("model", builtin_ref("conveyor-int8"))
    meta = frame_meta(data, seq, **fields)
    return frame_record(data, meta, offset=seq), meta


def _corrupt(size: int) -> bytes:
    """Starts and ends like a JPEG, but is not one."""
    return b"\xff\xd8\xff\xe0" + bytes(range(256)) * (size // 256) + b"\xff\xd9"


def test_verdicts_for_a_batch_in_input_order(slow: SlowPath, pictures: list[bytes]) -> None:
    frames = [_frame(p, i + 1, label="ok" if i % 2 else "scratch") for i, p in enumerate(pictures)]
    judged = slow.judge(frames)
    assert [j.meta.id for j in judged] == [m.id for _, m in frames]
    assert [j.record.offset for j in judged] == [r.offset for r, _ in frames]
    teacher = builtin_ref("conveyor-teacher")
    for j, (_, meta) in zip(judged, frames, strict=True):
        v = j.verdict
        assert isinstance(v, VerdictV1), j.detail
        assert j.reason is None
        assert v.frame_id == meta.id
        assert v.result_id == meta.result_id
        assert v.device == meta.device
        assert v.ts == meta.ts
        assert v.seq == meta.seq
        assert v.edge_model == meta.model
        assert v.edge_label == meta.label
        assert v.edge_score == meta.score
        assert v.teacher_model == teacher
        assert v.teacher_label in LABELS
        assert set(v.teacher_probs) == LABELS
        assert sum(v.teacher_probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert v.teacher_score == max(v.teacher_probs.values())
        assert v.agree == (v.teacher_label == meta.label)


def test_the_same_frame_gets_the_same_verdict(slow: SlowPath, pictures: list[bytes]) -> None:
    frame = _frame(pictures[3], 3)
    one, two = slow.judge([frame]), slow.judge([frame, _frame(pictures[0], 4)])
    assert one[0].verdict is not None
    assert two[0].verdict is not None
    assert one[0].verdict.id == two[0].verdict.id
    assert one[0].verdict.teacher_probs == two[0].verdict.teacher_probs


def test_bad_frames_get_a_reason_and_the_rest_a_verdict(
    slow: SlowPath, pictures: list[bytes]
) -> None:
    corrupt = _corrupt(len(pictures[0]))
    mystery = ModelRef(name="mystery-model", version="1.0.0", sha256="ef" * 32)
    frames = [
        _frame(pictures[0], 1),
        _frame(corrupt, 2),
        _frame(pictures[1], 3, model=mystery),
        _frame(pictures[2], 4, width=640, height=480),
        _frame(pictures[3], 5),
    ]
    decode_frame(frames[1][0])  # the markers pass the record check: only the teacher sees it
    judged = slow.judge(frames)
    assert [j.meta.seq for j in judged] == [1, 2, 3, 4, 5]
    assert [j.reason for j in judged] == [
        None,
        "corrupt_frame",
        "processing_error",
        "corrupt_frame",
        None,
    ]
    assert judged[0].verdict is not None
    assert judged[4].verdict is not None
    assert all(j.verdict is None for j in judged[1:4])
    assert "cannot be decoded" in judged[1].detail
    assert "no teacher configured for edge model 'mystery-model'" in judged[2].detail
    assert "640x480" in judged[3].detail


def test_a_catch_all_teacher_judges_unnamed_models(pictures: list[bytes]) -> None:
    sp = SlowPath(SlowPathConfig(threads=1, teachers={"*": "conveyor-teacher"}), registry())
    sp.preload()
    mystery = ModelRef(name="mystery-model", version="1.0.0", sha256="ef" * 32)
    [j] = sp.judge([_frame(pictures[0], 1, model=mystery)])
    assert j.verdict is not None
    assert j.verdict.edge_model == mystery


def test_preload_loads_each_teacher_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    class Counting(Teacher):
        def __init__(self, package: Any, **kwargs: Any) -> None:
            made.append(package.manifest.name)
            super().__init__(package, **kwargs)

    monkeypatch.setattr(slowpath_stage, "Teacher", Counting)
    sp = SlowPath(CONFIG, registry())  # conveyor-int8 and conveyor-fp32 share one teacher
    sp.preload()
    assert made == ["conveyor-teacher"]
    meta = frame_meta(b"x", 1, model=builtin_ref("conveyor-fp32"))
    first = sp.teacher(meta)
    assert sp.teacher(frame_meta(b"x", 2, model=builtin_ref("conveyor-int8"))) is first
    assert made == ["conveyor-teacher"]  # nothing loaded on use


@pytest.mark.parametrize(
    ("teacher", "words"),
    [
        ("no-such-teacher", ["no-such-teacher"]),
        ("./models/missing-teacher", ["does not exist"]),
        ("machine-anomaly-fp32", ["not a classifier"]),
    ],
)
def test_preload_fails_clearly_for_a_bad_teacher(teacher: str, words: list[str]) -> None:
    sp = SlowPath(SlowPathConfig(threads=1, teachers={"conveyor-int8": teacher}), registry())
    with pytest.raises(EdgeloopError) as info:
        sp.preload()
    text = str(info.value)
    for word in words:
        assert word in text


# --- the agent ------------------------------------------------------------------------------


class _Batches:
    """A Faust stream whose ``take_events`` yields fixed batches."""

    def __init__(self, batches: list[list[FakeEvent]]) -> None:
        self.batches = batches
        self.asked: list[tuple[int, float]] = []

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        self.asked.append((n, within))
        for b in self.batches:
            yield b


def _event(record: Any) -> FakeEvent:
    r = record
    return FakeEvent(FakeMessage(r.topic, r.partition, r.offset, r.key, r.value, r.headers))


def _agents(slow: SlowPath) -> Any:
    h = harness(config=CloudConfig(slowpath=CONFIG))
    h.components.slowpath = slow
    return h


def test_the_agent_sends_verdicts_and_dead_letters(slow: SlowPath, pictures: list[bytes]) -> None:
    h = _agents(slow)
    good = [_frame(p, i + 1)[0] for i, p in enumerate(pictures[:3])]
    meta = frame_meta(pictures[4], 9)
    bad_size = frame_record(pictures[4][:-50] + b"\xff\xd9", meta, offset=9)  # corrupt_frame
    no_headers = frame_record(pictures[5], meta, offset=10, headers=[])  # unknown_type
    undecodable = _frame(_corrupt(2000), 11)[0]
    batch = [_event(r) for r in [good[0], bad_size, good[1], no_headers, undecodable, good[2]]]
    stream = _Batches([batch])
    asyncio.run(h.agents.slowpath(stream))
    assert stream.asked == [(4, 0.05)]
    verdicts = [decode(s.value) for s in h.fake("verdicts").sent]
    assert [v.frame_id for v in verdicts] == [frame_meta(b"x", i).id for i in (1, 2, 3)]
    assert all(s.key == b"cam-01" for s in h.fake("verdicts").sent)
    dead = {s.value: dict(s.headers)["dlq.reason"] for s in h.fake("dlq").sent}
    assert dead == {
        bad_size.value: b"corrupt_frame",
        no_headers.value: b"unknown_type",
        undecodable.value: b"corrupt_frame",
    }
    m = h.components.metrics
    assert sum(metric(m, "edgeloop_worker_verdicts_total", agree=a) for a in ("true", "false")) == 3
    assert metric(m, "edgeloop_worker_processed_total", agent="slowpath") == 6


def test_a_failing_batch_is_dead_lettered_and_the_agent_goes_on(
    slow: SlowPath, pictures: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _agents(slow)
    calls = []
    real = SlowPath.judge

    def flaky(self: SlowPath, frames: Any) -> Any:
        calls.append(len(frames))
        if len(calls) == 1:
            raise RuntimeError("teacher crashed")
        return real(self, frames)

    monkeypatch.setattr(SlowPath, "judge", flaky)
    first = [_event(_frame(p, i + 1)[0]) for i, p in enumerate(pictures[:2])]
    second = [_event(_frame(pictures[2], 3)[0])]
    asyncio.run(h.agents.slowpath(_Batches([first, second])))
    assert calls == [2, 1]
    dead = h.fake("dlq").sent
    assert [dict(s.headers)["dlq.reason"] for s in dead] == [b"processing_error"] * 2
    assert dict(dead[0].headers)["dlq.detail"] == b"RuntimeError: teacher crashed"
    assert len(h.fake("verdicts").sent) == 1
    assert metric(h.components.metrics, "edgeloop_worker_errors_total", agent="slowpath") == 1
