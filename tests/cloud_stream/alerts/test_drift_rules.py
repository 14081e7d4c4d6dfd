from __future__ import annotations

from typing import Any

from cloud_stream.alerts.drift_rules import DriftAgreementEvaluator, DriftPsiEvaluator
from cloud_stream.alerts.rules import DriftAgreementRule, DriftPsiRule
from pipeline.modelpkg import ScoreReference
from pipeline.schemas import ModelRef
from tests.cloud_stream.alerts.messages import EDGE, NS, T0, Table, result, verdict

REFERENCE = ScoreReference(edges=(0.0, 0.6, 0.9, 1.0), fractions=(0.1, 0.2, 0.7), samples=1000)
AGREE_KEY = "agree|plant-a/cam-01/conveyor-int8@1.0.0"


def agreement_table(**fields: Any) -> Table:
    base: dict[str, Any] = {
        "id": "agree",
        "kind": "drift_agreement",
        "window_s": 600,
        "step_s": 60,
        "threshold": 0.8,
        "min_verdicts": 10,
        "worst_classes": 2,
        "cooldown_s": 0,
    }
    base.update(fields)
    return Table([DriftAgreementEvaluator(DriftAgreementRule(**base))])


def verdicts(start: int, pairs: list[tuple[str, str]], t_s: float = 0) -> list[Any]:
    return [verdict(start + i, T0 + int((t_s + i) * NS), e, t) for i, (e, t) in enumerate(pairs)]


def test_agreement_fires_naming_the_worst_classes_and_resolves() -> None:
    table = agreement_table()
    good = [("ok", "ok")] * 5
    bad = [("crack", "dent"), ("crack", "crack"), ("scratch", "ok"), ("dent", "scratch")]
    assert table.feed(*verdicts(0, good + bad)) == []  # 9 verdicts: below min_verdicts
    [fired] = table.feed(*verdicts(9, [("scratch", "scratch")], 9))
    # 7 of 10 agree; dent 0/1, then crack 1/2 and scratch 1/2 (ties broken by name).
    assert fired.state == "firing"
    assert fired.device == "cam-01"
    assert fired.line == "line1"
    assert fired.value == 0.7
    assert fired.summary == (
        "device cam-01 conveyor-int8@1.0.0: edge/teacher agreement 70% over 10 min "
        "(threshold 80%, 10 verdicts); worst: dent 0%, crack 50%"
    )
    assert fired.labels == {
        "model": "conveyor-int8",
        "model_version": "1.0.0",
        "worst_1": "dent",
        "worst_2": "crack",
    }
    [resolved] = table.feed(*verdicts(10, [("ok", "ok")] * 6, 10))
    assert resolved.state == "resolved"
    assert resolved.value == 12 / 15  # the 5th good verdict reaches the threshold


def test_agreement_keys_per_model_version() -> None:
    ev = DriftAgreementEvaluator(DriftAgreementRule(id="agree", kind="drift_agreement"))
    assert ev.keys(verdict(0, T0, "ok", "ok")) == [AGREE_KEY]
    other = ModelRef(name="conveyor-int8", version="1.1.0", sha256="00" * 32)
    assert ev.keys(verdict(0, T0, "ok", "ok", edge_model=other)) == [
        "agree|plant-a/cam-01/conveyor-int8@1.1.0"
    ]
    assert ev.keys(result(0, T0)) == []


def test_agreement_tick_resolves_once_the_window_is_empty() -> None:
    table = agreement_table(min_verdicts=2)
    [fired] = table.feed(*verdicts(0, [("ok", "crack"), ("ok", "dent")]))
    assert fired.state == "firing"
    ev = table.evaluators[0]
    assert table.tick(T0 + 300 * NS) == []
    assert not ev.idle(T0 + 700 * NS, table.load(ev, AGREE_KEY))
    [resolved] = table.tick(T0 + 700 * NS)
    assert resolved.state == "resolved"
    assert resolved.summary.endswith("no verdicts in the last 10 min; cleared")
    assert ev.idle(T0 + 700 * NS, table.load(ev, AGREE_KEY))


def psi_table(lookup: Any, **fields: Any) -> Table:
    base: dict[str, Any] = {
        "id": "shift",
        "kind": "drift_psi",
        "window_s": 3600,
        "step_s": 300,
        "threshold": 0.25,
        "min_results": 50,
        "cooldown_s": 0,
    }
    base.update(fields)
    return Table([DriftPsiEvaluator(DriftPsiRule(**base), lookup)])


def scores(start: int, values: list[float], t_s: float = 0) -> list[Any]:
    return [result(start + i, T0 + int((t_s + i) * NS), score=v) for i, v in enumerate(values)]


def test_psi_fires_on_a_shift_and_resolves_when_scores_return() -> None:
    asked: list[ModelRef] = []

    def lookup(model: ModelRef) -> ScoreReference | None:
        asked.append(model)
        return REFERENCE

    table = psi_table(lookup)
    assert table.feed(*scores(0, [0.95] * 7 + [0.7] * 2 + [0.3])) == []  # like the reference
    assert asked == [EDGE]  # looked up once: the state keeps the reference
    [fired] = table.feed(*scores(10, [0.5] * 40, 10))
    assert fired.state == "firing"
    assert fired.value is not None
    assert fired.value > 0.25
    assert fired.summary.startswith(
        "device cam-01 conveyor-int8@1.0.0: score distribution shifted, PSI "
    )
    assert fired.summary.endswith("over 1 h (threshold 0.25, 50 results)")
    assert fired.labels == {"model": "conveyor-int8", "model_version": "1.0.0"}
    # Two hours later the low scores are out of the window.
    [resolved] = table.feed(*scores(50, [0.95] * 35 + [0.7] * 10 + [0.3] * 5, 7200))
    assert resolved.state == "resolved"
    assert "score distribution stable" in resolved.summary


def test_psi_skips_models_without_a_reference() -> None:
    table = psi_table(lambda model: None, min_results=1)
    assert table.feed(*scores(0, [0.1] * 5)) == []
    state = table.state("shift|plant-a/cam-01/conveyor-int8@1.0.0")
    assert state["shift"] is None
    ev = table.evaluators[0]
    assert ev.idle(T0, table.load(ev, "shift|plant-a/cam-01/conveyor-int8@1.0.0"))
    assert table.tick(T0 + 10**6 * NS) == []


def test_psi_tick_resolves_once_the_window_is_empty() -> None:
    table = psi_table(lambda model: REFERENCE, min_results=5)
    [fired] = table.feed(*scores(0, [0.5] * 5))
    assert fired.state == "firing"
    assert table.tick(T0 + 600 * NS) == []
    [resolved] = table.tick(T0 + 4000 * NS)
    assert resolved.summary.endswith("no results in the last 1 h; cleared")
    assert resolved.value is None


def test_agreement_does_not_resolve_while_the_device_clock_runs_ahead() -> None:
    """Verdicts stamped in the future (a device clock ahead, a simulated replay) are
    still in the window: a tick at wall-clock time must not resolve and re-fire."""
    table = agreement_table(min_verdicts=2)
    [fired] = table.feed(*verdicts(0, [("ok", "crack"), ("ok", "dent")], t_s=3600))
    assert fired.state == "firing"
    ev = table.evaluators[0]
    assert table.tick(T0) == [], "wall clock an hour behind the verdicts"
    assert not ev.idle(T0, table.load(ev, AGREE_KEY))
