"""Evaluators of production quality: defect rate, sustained sensor anomaly."""

from __future__ import annotations

__all__ = ["AnomalySustainedEvaluator", "DefectRateEvaluator"]

from typing import Any

from cloud_stream.alerts.engine import format_duration, format_percent
from cloud_stream.alerts.evaluator import Evaluator, fmt_number
from cloud_stream.alerts.rules import AnomalySustainedRule, DefectRateRule
from cloud_stream.alerts.states import AnomalyState, DefectRateState
from pipeline.schemas import AlertV1, ResultV1


class DefectRateEvaluator(Evaluator[DefectRateRule, DefectRateState]):
    """``defect_rate``: share of non-ok classify labels per line or device."""

    consumes = frozenset({"result"})

    def keys(self, message: object) -> list[str]:
        """One key per classify result: its line (line scope) or its device."""
        if not isinstance(message, ResultV1) or message.task != "classify":
            return []
        if self.rule.scope == "line":
            return [] if message.line is None else [self._key(message.site, message.line)]
        return [self._key(message.site, message.device)]

    def new_state(self, key: str) -> DefectRateState:
        """A fresh state."""
        return DefectRateState(key, self.rule.id, self.rule.window_s, self.rule.step_s)

    def load_state(self, data: dict[str, Any]) -> DefectRateState:
        """Rebuild a state."""
        return DefectRateState.from_state(data)

    def idle(self, now_ns: int, state: DefectRateState) -> bool:
        """Not firing and nothing in the window (at now, or at the newest event if later):
        the state of a line that went quiet is dropped instead of kept forever."""
        if state.tracker.firing:
            return False
        return not state.counts.total(max(now_ns, state.counts.high_ns or 0))

    def observe(self, message: ResultV1, state: DefectRateState) -> list[AlertV1]:
        """Count the result's label; fire or resolve once ``min_samples`` are in the window."""
        rule = self.rule
        state.site, state.device = message.site, message.device
        state.line = message.line or state.line
        if not state.dedup.accept(message.device, message.seq):
            return []
        if not state.counts.add(message.ts, message.label):
            return []
        now = state.counts.high_ns or message.ts
        counts = state.counts.totals(now)
        n = sum(counts.values())
        if n < rule.min_samples:
            return []
        defects = {k: v for k, v in counts.items() if k not in rule.ok_labels}
        rate = sum(defects.values()) / n
        condition = rate > rule.threshold
        if rule.scope == "line":
            subject, who = str(state.line), f"line {state.line}"
        else:
            subject, who = message.device, f"device {message.device}"
        what = "defect rate" if condition else "defect rate back to"
        summary = (
            f"{who}: {what} {format_percent(rate)} over {format_duration(rule.window_s)} "
            f"(threshold {format_percent(rule.threshold)}, {n} parts)"
        )
        labels: dict[str, str] = {}
        if defects:
            labels["top_defect"] = sorted(defects.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        return self._out(
            state.tracker.update(
                rule,
                subject,
                condition,
                rate,
                message.ts,
                site=message.site,
                line=state.line,
                summary=summary,
                labels=labels,
                scope=rule.scope,
                threshold=rule.threshold,
            )
        )


class AnomalySustainedEvaluator(Evaluator[AnomalySustainedRule, AnomalyState]):
    """``anomaly_sustained``: consecutive anomalous sensor windows per device and source."""

    consumes = frozenset({"result"})

    def keys(self, message: object) -> list[str]:
        """One key per anomaly result: its device and source."""
        if not isinstance(message, ResultV1) or message.task != "anomaly":
            return []
        return [self._key(message.site, message.device, message.source)]

    def new_state(self, key: str) -> AnomalyState:
        """A fresh state."""
        return AnomalyState(key, self.rule.id)

    def load_state(self, data: dict[str, Any]) -> AnomalyState:
        """Rebuild a state."""
        return AnomalyState.from_state(data)

    def observe(self, message: ResultV1, state: AnomalyState) -> list[AlertV1]:
        """Extend the anomalous or normal run; fire or resolve at the rule's counts.

        Results at or below the last seq seen (redelivered or reordered) are ignored:
        a run only means something in order.
        """
        rule = self.rule
        if state.last_seq is not None and message.seq <= state.last_seq:
            return []
        state.last_seq = message.seq
        state.site, state.device, state.source = message.site, message.device, message.source
        state.line = message.line or state.line
        if message.route == "anomalous":
            state.anomalous_run += 1
            state.normal_run = 0
        else:
            state.normal_run += 1
            state.anomalous_run = 0
        firing = state.tracker.firing
        if not firing and state.anomalous_run >= rule.for_windows:
            condition = True
            what = f"sensor anomaly for {state.anomalous_run} windows in a row"
        elif firing and state.normal_run >= rule.clear_windows:
            condition = False
            what = f"normal again for {state.normal_run} windows"
        else:
            return []
        threshold = message.anomaly.threshold if message.anomaly is not None else None
        limit = "" if threshold is None else f", threshold {fmt_number(threshold)}"
        summary = (
            f"device {message.device} source {message.source}: {what} "
            f"(score {fmt_number(message.score)}{limit})"
        )
        return self._out(
            state.tracker.update(
                rule,
                message.device,
                condition,
                message.score,
                message.ts,
                site=message.site,
                line=state.line,
                summary=summary,
                labels={"source": message.source},
                threshold=threshold,
            )
        )
