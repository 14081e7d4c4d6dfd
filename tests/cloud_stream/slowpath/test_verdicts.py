"""Verdict messages: deterministic ids, fields from the frame, valid against the schema."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from cloud_stream.slowpath import build_verdict, verdict_id
from pipeline.schemas import decode, encode
from pipeline.schemas.base import ModelRef
from pipeline.schemas.frame import FrameMetaV1
from pipeline.schemas.verdict import VerdictV1

EDGE = ModelRef(name="conveyor-int8", version="1.0.0", sha256="1" * 64)
TEACHER = ModelRef(name="conveyor-teacher", version="1.1.0", sha256="2" * 64)
PROBS = {"ok": 0.1, "scratch": 0.899999, "crack": 1e-9}


def _frame(**changes: object) -> FrameMetaV1:
    fields: dict[str, object] = {
        "id": "frame0000000001",
        "site": "plant-a",
        "device": "cam-01",
        "seq": 42,
        "ts": 1_700_000_000_123_456_789,
        "model": EDGE,
        "source": "belt",
        "line": "line-1",
        "result_id": "result000000001",
        "reason": "uncertain",
        "label": "scratch",
        "score": 0.71,
        "width": 640,
        "height": 480,
        "size": 20_000,
        "phash": "0123456789abcdef",
    }
    fields.update(changes)
    return FrameMetaV1(**fields)  # type: ignore[arg-type]


def test_fields_come_from_the_frame_and_the_teacher():
    meta = _frame()
    v = build_verdict(meta, TEACHER, "scratch", 0.899999, PROBS, 12.34567)
    assert (v.site, v.device, v.seq, v.ts) == (meta.site, meta.device, meta.seq, meta.ts)
    assert (v.frame_id, v.result_id, v.source, v.line) == (
        meta.id,
        meta.result_id,
        "belt",
        "line-1",
    )
    assert v.reason == "uncertain"
    assert (v.edge_model, v.edge_label, v.edge_score) == (EDGE, "scratch", 0.71)
    assert (v.teacher_model, v.teacher_label) == (TEACHER, "scratch")
    assert v.teacher_score == 0.9
    assert v.teacher_probs == {"ok": 0.1, "scratch": 0.9, "crack": 0.0}
    assert v.agree is True
    assert v.latency_ms == 12.346


def test_disagreement():
    v = build_verdict(_frame(label="ok"), TEACHER, "scratch", 0.9, PROBS, 1.0)
    assert v.agree is False


def test_same_frame_same_teacher_same_id():
    a = build_verdict(_frame(), TEACHER, "scratch", 0.9, PROBS, 1.0)
    b = build_verdict(_frame(), TEACHER, "scratch", 0.9, PROBS, 99.0)
    assert a.id == b.id
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", a.id)
    other_teacher = TEACHER.model_copy(update={"sha256": "3" * 64})
    assert build_verdict(_frame(), other_teacher, "ok", 0.9, PROBS, 1.0).id != a.id
    assert build_verdict(_frame(id="frame0000000002"), TEACHER, "ok", 0.9, PROBS, 1.0).id != a.id
    assert verdict_id("frame0000000001", TEACHER.sha256) == a.id


def test_round_trips_through_the_codec():
    v = build_verdict(_frame(line=None, reason="audit"), TEACHER, "ok", 1.0000001, PROBS, -0.5)
    assert v.teacher_score == 1.0
    assert v.latency_ms == 0.0
    back = decode(encode(v))
    assert isinstance(back, VerdictV1)
    assert back == v


def test_invalid_label_is_refused():
    with pytest.raises(ValidationError):
        build_verdict(_frame(), TEACHER, "not a label!", 0.9, PROBS, 1.0)
