"""Evaluators of model drift: edge/teacher agreement, score distribution shift (PSI)."""

from __future__ import annotations

__all__ = ["DriftAgreementEvaluator", "DriftPsiEvaluator"]

from typing import Any

from cloud_stream.alerts.engine import format_duration, format_percent
from cloud_stream.alerts.evaluator import Evaluator, ReferenceLookup, fmt_number
from cloud_stream.alerts.rules import DriftAgreementRule, DriftPsiRule
from cloud_stream.alerts.states import AgreementState, PsiState
from cloud_stream.alerts.windows import HoppingCounts
from cloud_stream.drift.audit import ScoreShift
from pipeline.schemas import AlertV1, ResultV1, VerdictV1


class DriftAgreementEvaluator(Evaluator[DriftAgreementRule, AgreementState]):
    """``drift_agreement``: edge/teacher agreement per device and edge model version."""

    consumes = frozenset({"verdict"})
    ticks = True

    def keys(self, message: object) -> list[str]:
        """One key per verdict: its device and edge model version."""
        if not isinstance(message, VerdictV1):
            return []
        model = message.edge_model
        return [self._key(message.site, message.device, f"{model.name}@{model.version}")]

    def new_state(self, key: str) -> AgreementState:
        """A fresh state."""
        return AgreementState(key, self.rule.id, self.rule.window_s, self.rule.step_s)

    def load_state(self, data: dict[str, Any]) -> AgreementState:
        """Rebuild a state."""
        return AgreementState.from_state(data)

    def observe(self, message: VerdictV1, state: AgreementState) -> list[AlertV1]:
        """Count the verdict; fire below the threshold with ``min_verdicts``, else resolve."""
        state.line = message.line or state.line
        if not state.audit.observe(message):
            return []
        now = state.audit.counts.high_ns or message.ts
        classes = state.audit.per_class(now)
        total = sum(t for _, t in classes.values())
        if total < self.rule.min_verdicts:
            return []
        agreement = sum(a for a, _ in classes.values()) / total
        return self._update(state, agreement < self.rule.threshold, agreement, total, message.ts)

    def tick(self, now_ns: int, state: AgreementState) -> list[AlertV1]:
        """Resolve a firing alert once no verdict is left in the window (model replaced)."""
        if not state.tracker.firing or _live(state.audit.counts, now_ns):
            return []
        return self._update(state, False, None, 0, now_ns)

    def idle(self, now_ns: int, state: AgreementState) -> bool:
        """No verdicts in the window and not firing."""
        return not state.tracker.firing and not _live(state.audit.counts, now_ns)

    def _update(
        self,
        state: AgreementState,
        condition: bool,
        agreement: float | None,
        total: int,
        ts_ns: int,
    ) -> list[AlertV1]:
        rule, audit = self.rule, state.audit
        who = f"device {audit.device} {audit.model}@{audit.model_version}"
        labels = {"model": str(audit.model), "model_version": str(audit.model_version)}
        if agreement is None:
            summary = f"{who}: no verdicts in the last {format_duration(rule.window_s)}; cleared"
        else:
            summary = (
                f"{who}: edge/teacher agreement {format_percent(agreement)} over "
                f"{format_duration(rule.window_s)} (threshold {format_percent(rule.threshold)}, "
                f"{total} verdicts)"
            )
            worst = self._worst(state, ts_ns)
            if worst:
                summary += "; worst: " + ", ".join(f"{c} {format_percent(a)}" for c, a in worst)
                labels.update({f"worst_{i}": c for i, (c, _) in enumerate(worst, 1)})
        return self._out(
            state.tracker.update(
                rule,
                str(audit.device),
                condition,
                agreement,
                ts_ns,
                site=str(audit.site),
                line=state.line,
                summary=summary,
                labels=labels,
                threshold=rule.threshold,
            )
        )

    def _worst(self, state: AgreementState, ts_ns: int) -> list[tuple[str, float]]:
        """Classes with disagreements, lowest agreement first (more verdicts first on ties)."""
        now = max(ts_ns, state.audit.counts.high_ns or ts_ns)
        rows = [(c, a / t, t) for c, (a, t) in state.audit.per_class(now).items() if a < t]
        rows.sort(key=lambda r: (r[1], -r[2], r[0]))
        return [(c, share) for c, share, _ in rows[: self.rule.worst_classes]]


class DriftPsiEvaluator(Evaluator[DriftPsiRule, PsiState]):
    """``drift_psi``: PSI of the edge's score distribution per device and model version.

    Args:
        rule: The rule.
        reference: Looks up a model's score reference (from its manifest); None
            when the model has none, and then its results are skipped. It is asked
            on every result until a state has its reference, so cache inside it.
    """

    consumes = frozenset({"result"})
    ticks = True

    def __init__(self, rule: DriftPsiRule, reference: ReferenceLookup) -> None:
        super().__init__(rule)
        self.reference = reference

    def keys(self, message: object) -> list[str]:
        """One key per result: its device and model version."""
        if not isinstance(message, ResultV1):
            return []
        model = message.model
        return [self._key(message.site, message.device, f"{model.name}@{model.version}")]

    def new_state(self, key: str) -> PsiState:
        """A fresh state (its reference is looked up on the first result)."""
        return PsiState(key, self.rule.id)

    def load_state(self, data: dict[str, Any]) -> PsiState:
        """Rebuild a state."""
        return PsiState.from_state(data)

    def observe(self, message: ResultV1, state: PsiState) -> list[AlertV1]:
        """Count the score; fire above the threshold with ``min_results``, else resolve."""
        rule = self.rule
        if state.shift is None:
            reference = self.reference(message.model)
            if reference is None:
                return []
            state.shift = ScoreShift(reference, rule.window_s, rule.step_s)
        state.line = message.line or state.line
        if not state.shift.observe(message):
            return []
        value, n = state.shift.psi(state.shift.counts.high_ns or message.ts)
        if value is None or n < rule.min_results:
            return []
        return self._update(state, value > rule.threshold, value, n, message.ts)

    def tick(self, now_ns: int, state: PsiState) -> list[AlertV1]:
        """Resolve a firing alert once no result is left in the window (model replaced)."""
        if state.shift is None or not state.tracker.firing or _live(state.shift.counts, now_ns):
            return []
        return self._update(state, False, None, 0, now_ns)

    def idle(self, now_ns: int, state: PsiState) -> bool:
        """No results in the window and not firing."""
        if state.tracker.firing:
            return False
        return state.shift is None or not _live(state.shift.counts, now_ns)

    def _update(
        self, state: PsiState, condition: bool, value: float | None, n: int, ts_ns: int
    ) -> list[AlertV1]:
        rule, shift = self.rule, state.shift
        assert shift is not None
        who = f"device {shift.device} {shift.model}@{shift.model_version}"
        window = format_duration(rule.window_s)
        if value is None:
            summary = f"{who}: no results in the last {window}; cleared"
        else:
            what = "score distribution shifted" if condition else "score distribution stable"
            summary = (
                f"{who}: {what}, PSI {value:.3f} over {window} "
                f"(threshold {fmt_number(rule.threshold)}, {n} results)"
            )
        return self._out(
            state.tracker.update(
                rule,
                str(shift.device),
                condition,
                value,
                ts_ns,
                site=str(shift.site),
                line=state.line,
                summary=summary,
                labels={"model": str(shift.model), "model_version": str(shift.model_version)},
                threshold=rule.threshold,
            )
        )


def _live(counts: HoppingCounts, now_ns: int) -> int:
    """What the window holds at wall-clock ``now_ns``, or at the newest event if that is
    later: a device whose clock runs ahead (or a replay of simulated time) must not
    look silent, or its alerts would resolve and fire again on every tick."""
    return counts.total(max(now_ns, counts.high_ns or 0))
