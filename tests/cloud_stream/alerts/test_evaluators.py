from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud_stream.alerts import build_evaluators, load_rules, parse_rules
from cloud_stream.alerts.devices import DeviceOfflineEvaluator, TelemetryGaugeEvaluator
from cloud_stream.alerts.drift_rules import DriftAgreementEvaluator, DriftPsiEvaluator
from cloud_stream.alerts.quality import AnomalySustainedEvaluator, DefectRateEvaluator
from pipeline.modelpkg import ScoreReference
from pipeline.schemas import ModelRef
from tests.cloud_stream.alerts.messages import (
    NS,
    T0,
    Table,
    anomaly,
    result,
    status,
    telemetry,
    verdict,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "alerts.example.yaml"


def no_reference(model: ModelRef) -> ScoreReference | None:
    return None


def test_one_evaluator_per_enabled_rule_in_order() -> None:
    evaluators = build_evaluators(load_rules(EXAMPLE), no_reference)
    assert [type(e) for e in evaluators] == [
        DefectRateEvaluator,
        AnomalySustainedEvaluator,
        DeviceOfflineEvaluator,
        DriftAgreementEvaluator,
        DriftPsiEvaluator,
        TelemetryGaugeEvaluator,
    ]
    consumes = {type(e).__name__: set(e.consumes) for e in evaluators}
    assert consumes["DriftAgreementEvaluator"] == {"verdict"}
    assert consumes["DeviceOfflineEvaluator"] == {"result", "status", "telemetry"}
    assert [e.rule.id for e in evaluators if e.ticks] == [
        "device_offline",
        "drift_agreement_low",
        "score_shift",
    ]


def test_disabled_rules_are_skipped() -> None:
    rules = parse_rules(
        "rules:\n"
        "  - {id: a, kind: device_offline, enabled: false}\n"
        "  - {id: b, kind: device_offline}\n"
    )
    assert [e.rule.id for e in build_evaluators(rules, no_reference)] == ["b"]


def test_keys_are_unique_across_rules() -> None:
    evaluators = build_evaluators(load_rules(EXAMPLE), no_reference)
    messages = [
        result(0, T0),
        anomaly(1, T0, True),
        verdict(2, T0, "ok", "crack"),
        status(3, T0, "online"),
        telemetry(4, T0, {"outbox.depth": 1.0}),
    ]
    rule_of: dict[str, set[str]] = {}
    for m in messages:
        for e in evaluators:
            for k in e.keys(m):
                rule_of.setdefault(k, set()).add(e.rule.id)
    assert all(len(rules) == 1 for rules in rule_of.values())
    assert {r for rules in rule_of.values() for r in rules} == {e.rule.id for e in evaluators}
    for e in evaluators:
        assert {k for k in rule_of if e.owns(k)} == {
            k for k, r in rule_of.items() if e.rule.id in r
        }


def test_the_example_rules_run_end_to_end() -> None:
    table = Table(build_evaluators(load_rules(EXAMPLE), no_reference))
    msgs: list[Any] = [status(0, T0, "online")]
    msgs += [result(1 + i, T0 + i * NS, label="crack" if i % 5 == 0 else "ok") for i in range(60)]
    alerts = table.feed(*msgs)
    assert [(a.rule, a.state) for a in alerts] == [("defect_rate_high", "firing")]
    offline = table.tick(T0 + 200 * NS)
    assert [(a.rule, a.state) for a in offline] == [("device_offline", "firing")]
