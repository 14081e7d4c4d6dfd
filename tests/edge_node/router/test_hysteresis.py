"""The anomaly gate emits transitions only and does not flap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_node.router import AnomalyGate
from pipeline.modelpkg import AnomalyThresholds


def gate_of(raise_at: float, clear_at: float, **kw: int) -> AnomalyGate:
    return AnomalyGate(AnomalyThresholds(raise_at=raise_at, clear_at=clear_at), **kw)


def run(gate: AnomalyGate, scores: list[float]) -> list[tuple[int, str]]:
    return [(i, t) for i, s in enumerate(scores) if (t := gate.update(s))]


def test_raise_and_clear():
    gate = gate_of(5, 2)
    assert run(gate, [1, 4, 5, 6, 3, 2.5, 1.9, 1]) == [(2, "raised"), (6, "cleared")]
    assert not gate.active


def test_flapping_between_thresholds_is_one_event():
    gate = gate_of(5, 2)
    scores = [6, 4, 6, 3, 5.5, 2.1, 7, 2.0, 4.9]
    assert run(gate, scores) == [(0, "raised")]
    assert gate.active


def test_consecutive_windows_required():
    gate = gate_of(5, 2, raise_after=3, clear_after=2)
    scores = [6, 6, 1, 6, 6, 6, 1, 6, 1, 1]
    assert run(gate, scores) == [(5, "raised"), (9, "cleared")]


def test_none_changes_nothing_and_reset():
    gate = gate_of(0.8, 0.5, raise_after=2)
    assert gate.update(0.9) is None
    assert gate.update(None) is None
    assert gate.update(0.9) == "raised"
    assert gate.update(None) is None
    assert gate.active
    gate.reset()
    assert not gate.active
    assert gate.update(0.9) is None
    assert gate.update(0.9) == "raised"


def test_invalid_settings():
    with pytest.raises(ValueError):
        gate_of(2, 1, raise_after=0)
    with pytest.raises(ValueError):
        gate_of(2, 1, clear_after=0)


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=200))
def test_transitions_alternate_and_follow_thresholds(scores):
    gate = gate_of(6, 3, raise_after=2, clear_after=2)
    events = run(gate, scores)
    kinds = [t for _, t in events]
    assert kinds == ["raised", "cleared"] * (len(kinds) // 2) + ["raised"] * (len(kinds) % 2)
    for i, kind in events:
        if kind == "raised":
            assert scores[i] >= 6
            assert scores[i - 1] >= 6
        else:
            assert scores[i] < 3
            assert scores[i - 1] < 3
