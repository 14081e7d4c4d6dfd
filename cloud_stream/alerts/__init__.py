"""Alert rules: YAML config, event-time windows, per-subject state and evaluators.

Pure logic (no Kafka, no Faust): the worker feeds decoded messages and stores each
state's ``to_state()`` in a table. The evaluators are re-exported lazily, because
they import :mod:`cloud_stream.drift`, which itself uses the windows here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloud_stream.alerts.engine import AlertTracker, alert_id
from cloud_stream.alerts.rules import RULE_KINDS, Rule, RulesConfig, load_rules, parse_rules
from cloud_stream.alerts.windows import HoppingCounts, SeqDedup

if TYPE_CHECKING:
    from cloud_stream.alerts.evaluators import Evaluator, build_evaluators

__all__ = [
    "RULE_KINDS",
    "AlertTracker",
    "Evaluator",
    "HoppingCounts",
    "Rule",
    "RulesConfig",
    "SeqDedup",
    "alert_id",
    "build_evaluators",
    "load_rules",
    "parse_rules",
]


def __getattr__(name: str) -> Any:
    if name in ("Evaluator", "build_evaluators"):
        from cloud_stream.alerts import evaluators

        return getattr(evaluators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
