from __future__ import annotations

import json

import pytest

from cloud_stream.drift.audit import ALL, AgreementAudit, DriftFigure, ScoreShift
from pipeline.modelpkg import ScoreReference
from tests.cloud_stream.alerts.messages import NS, T0, result, verdict

REFERENCE = ScoreReference(edges=(0.0, 0.6, 0.9, 1.0), fractions=(0.1, 0.2, 0.7), samples=1000)


def roundtrip_audit(audit: AgreementAudit) -> AgreementAudit:
    doc = audit.to_state()
    again = AgreementAudit.from_state(json.loads(json.dumps(doc)))
    assert again.to_state() == doc
    return again


def roundtrip_shift(shift: ScoreShift) -> ScoreShift:
    doc = shift.to_state()
    again = ScoreShift.from_state(json.loads(json.dumps(doc)))
    assert again.to_state() == doc
    return again


def test_agreement_per_class_and_all() -> None:
    audit = AgreementAudit(600, 60)
    pairs = [("ok", "ok"), ("ok", "ok"), ("ok", "scratch"), ("crack", "dent"), ("crack", "crack")]
    for i, (edge, teacher) in enumerate(pairs):
        assert audit.observe(verdict(i, T0 + i * NS, edge, teacher))
        audit = roundtrip_audit(audit)
    figures = audit.figures(T0 + 10 * NS)
    assert [f.label for f in figures] == [ALL, "crack", "ok"]
    assert figures[0] == DriftFigure(
        site="plant-a",
        device="cam-01",
        model="conveyor-int8",
        model_version="1.0.0",
        label=ALL,
        ts_ns=T0 + 10 * NS,
        agreement=3 / 5,
        verdicts=5,
    )
    assert figures[1].agreement == pytest.approx(0.5)
    assert figures[2].agreement == pytest.approx(2 / 3)
    assert figures[2].verdicts == 3
    assert figures[1].psi is None


def test_agreement_window_hops() -> None:
    audit = AgreementAudit(120, 60)
    audit.observe(verdict(0, T0, "ok", "scratch"))
    audit.observe(verdict(1, T0 + 60 * NS, "ok", "ok"))
    assert audit.figures(T0 + 60 * NS)[0].agreement == pytest.approx(0.5)
    assert audit.figures(T0 + 120 * NS)[0].agreement == pytest.approx(1.0)
    assert audit.figures(T0 + 180 * NS) == []
    assert AgreementAudit(60, 60).figures(T0) == []


def test_late_verdict_is_not_counted() -> None:
    audit = AgreementAudit(120, 60)
    audit.observe(verdict(0, T0 + 600 * NS, "ok", "ok"))
    assert not audit.observe(verdict(1, T0, "ok", "scratch"))
    assert audit.counts.late == 1
    assert audit.figures(T0 + 600 * NS)[0].verdicts == 1


def test_score_shift_near_the_reference_is_stable() -> None:
    shift = ScoreShift(REFERENCE, 3600, 300)
    scores = [0.3] * 10 + [0.7] * 20 + [0.95] * 70
    for i, s in enumerate(scores):
        assert shift.observe(result(i, T0 + i * NS, score=s))
        shift = roundtrip_shift(shift)
    value, n = shift.psi(T0 + 100 * NS)
    assert n == 100
    assert value == pytest.approx(0.0, abs=1e-9)
    assert shift.observed(T0 + 100 * NS) == [10, 20, 70]


def test_score_shift_when_scores_drop_is_major() -> None:
    shift = ScoreShift(REFERENCE, 3600, 300)
    for i in range(100):
        shift.observe(result(i, T0 + i * NS, score=0.5 if i % 2 else 0.75))
    value, n = shift.psi(T0 + 100 * NS)
    assert n == 100
    assert value is not None
    assert value > 0.25
    figure = shift.figure(T0 + 100 * NS)
    assert figure is not None
    assert (figure.label, figure.psi, figure.results, figure.agreement) == (ALL, value, 100, None)


def test_score_shift_skips_redelivered_results_and_empty_windows() -> None:
    shift = ScoreShift(REFERENCE, 600, 60)
    assert shift.observe(result(1, T0, score=0.95))
    assert not shift.observe(result(1, T0, score=0.95))
    assert shift.psi(T0)[1] == 1
    assert shift.psi(T0 + 3600 * NS) == (None, 0)
    assert shift.figure(T0 + 3600 * NS) is None


def test_score_shift_state_keeps_the_reference() -> None:
    shift = ScoreShift(REFERENCE, 600, 60)
    shift.observe(result(1, T0, score=0.95))
    again = roundtrip_shift(shift)
    assert again.reference == REFERENCE
    assert again.model == "conveyor-int8"
    assert again.psi(T0) == shift.psi(T0)


def test_redelivered_verdict_is_counted_once_even_after_a_restart() -> None:
    audit = AgreementAudit(600, 60)
    assert audit.observe(verdict(1, T0, "ok", "ok"))
    assert audit.observe(verdict(2, T0 + NS, "crack", "ok"))
    restored = roundtrip_audit(audit)  # the worker restarts from its changelog
    assert not restored.observe(verdict(2, T0 + NS, "crack", "ok")), "a replayed verdict"
    assert restored.per_class(T0 + 2 * NS) == {"crack": (0, 1), "ok": (1, 1)}
