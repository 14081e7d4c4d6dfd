"""Sample metadata: strict fields, built from a verdict, and the keep policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_stream.datasets import CollectConfig, DatasetConfig, SampleMeta, skip_reason
from pipeline.schemas import FrameMetaV1, VerdictV1, new_id

from .conftest import EDGE, TEACHER, meta


def test_from_verdict_takes_frame_and_teacher_fields():
    frame = FrameMetaV1(
        id=new_id(),
        site="plant-a",
        device="cam-02",
        seq=7,
        ts=123,
        model=EDGE,
        source="cam0",
        line="line-2",
        result_id=new_id(),
        reason="audit",
        label="ok",
        score=0.97,
        width=64,
        height=48,
        size=1000,
        phash="0123456789abcdef",
    )
    verdict = VerdictV1(
        id=new_id(),
        site="plant-a",
        device="cam-02",
        seq=0,
        ts=999,
        frame_id=frame.id,
        result_id=frame.result_id,
        source="cam0",
        line="line-2",
        reason="audit",
        edge_model=EDGE,
        edge_label="ok",
        edge_score=0.97,
        teacher_model=TEACHER,
        teacher_label="scratch",
        teacher_score=0.8,
        teacher_probs={"ok": 0.2, "scratch": 0.8},
        agree=False,
        latency_ms=3.0,
    )
    m = SampleMeta.from_verdict(verdict, frame)
    assert (m.frame_id, m.result_id, m.verdict_id) == (frame.id, frame.result_id, verdict.id)
    assert (m.device, m.line, m.ts, m.phash) == ("cam-02", "line-2", 123, "0123456789abcdef")
    assert (m.teacher_label, m.teacher_score, m.agree) == ("scratch", 0.8, False)
    assert (m.width, m.height) == (64, 48)


@pytest.mark.parametrize(
    "change",
    [{"phash": "XYZ"}, {"frame_id": "a/b"}, {"edge_score": 1.5}, {"teacher_label": "bad label"}],
)
def test_bad_metadata_is_refused(change):
    with pytest.raises(ValidationError):
        meta(**change)


def test_strict_types():
    with pytest.raises(ValidationError):
        meta(ts="123")


@pytest.mark.parametrize(
    ("reason", "agree", "collect", "expected"),
    [
        ("uncertain", True, {}, None),
        ("uncertain", False, {"uncertain": False}, "uncertain_off"),
        ("audit", False, {}, None),
        ("audit", False, {"disagreements": False}, "disagreement_off"),
        ("audit", True, {}, "agreement_off"),
        ("audit", True, {"audit_agreements": True}, None),
    ],
)
def test_collect_policy(reason, agree, collect, expected):
    config = DatasetConfig(collect=CollectConfig(**collect))
    assert skip_reason(meta(reason=reason, agree=agree), config) == expected


def test_low_teacher_score_and_unknown_labels_are_skipped():
    config = DatasetConfig(min_teacher_score=0.7, labels=["ok", "dent"])
    assert skip_reason(meta(teacher_score=0.69), config) == "low_teacher_score"
    assert skip_reason(meta(teacher_score=0.7), config) is None
    assert skip_reason(meta(teacher_label="scratch"), config) == "unknown_label"
