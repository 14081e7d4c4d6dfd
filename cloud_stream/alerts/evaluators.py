"""One evaluator per rule kind: which state a message updates, and the alerts it causes.

How a worker uses them, for each decoded message::

    for ev in evaluators:
        for key in ev.keys(message):              # [] when the rule ignores it
            state = ev.state(key, table.get(key))
            alerts = ev.observe(message, state)
            table[key] = state.to_state()

and, for the evaluators with ``ticks`` (device offline, drift), every few seconds
over their keys (``ev.owns(key)``)::

    alerts = ev.tick(now_ns, state)

Keys look like ``"{rule id}|{site}/{line}"`` and are unique across rules, so one
table can hold every rule's state. Routing by message type: results feed
``defect_rate``, ``anomaly_sustained``, ``drift_psi`` and ``device_offline``;
verdicts ``drift_agreement``; status and telemetry ``device_offline``; telemetry
``telemetry_gauge`` (see ``consumes``). Everything is driven by the messages'
event time and the ``now_ns`` given to ``tick``, so a replay gives the same alerts.
"""

from __future__ import annotations

__all__ = [
    "AnomalySustainedEvaluator",
    "DefectRateEvaluator",
    "DeviceOfflineEvaluator",
    "DriftAgreementEvaluator",
    "DriftPsiEvaluator",
    "Evaluator",
    "ReferenceLookup",
    "TelemetryGaugeEvaluator",
    "build_evaluators",
]

from typing import Any

from cloud_stream.alerts.devices import DeviceOfflineEvaluator, TelemetryGaugeEvaluator
from cloud_stream.alerts.drift_rules import DriftAgreementEvaluator, DriftPsiEvaluator
from cloud_stream.alerts.evaluator import Evaluator, ReferenceLookup
from cloud_stream.alerts.quality import AnomalySustainedEvaluator, DefectRateEvaluator
from cloud_stream.alerts.rules import (
    AnomalySustainedRule,
    DefectRateRule,
    DeviceOfflineRule,
    DriftAgreementRule,
    DriftPsiRule,
    RulesConfig,
)


def build_evaluators(
    rules: RulesConfig, score_reference: ReferenceLookup
) -> list[Evaluator[Any, Any]]:
    """One evaluator per enabled rule, in file order.

    Args:
        rules: The loaded rules.
        score_reference: Looks up a model's score reference, for ``drift_psi`` rules.
    """
    out: list[Evaluator[Any, Any]] = []
    for rule in rules.rules:
        if not rule.enabled:
            continue
        if isinstance(rule, DefectRateRule):
            out.append(DefectRateEvaluator(rule))
        elif isinstance(rule, AnomalySustainedRule):
            out.append(AnomalySustainedEvaluator(rule))
        elif isinstance(rule, DeviceOfflineRule):
            out.append(DeviceOfflineEvaluator(rule))
        elif isinstance(rule, DriftAgreementRule):
            out.append(DriftAgreementEvaluator(rule))
        elif isinstance(rule, DriftPsiRule):
            out.append(DriftPsiEvaluator(rule, score_reference))
        else:
            out.append(TelemetryGaugeEvaluator(rule))
    return out
