"""Alert state of one (rule, subject): turns a condition into firing/resolved events.

The tracker emits an :class:`~pipeline.schemas.AlertV1` only on a transition:

* not firing -> firing, when the condition holds and the cooldown since the last
  firing (event time) has passed; a firing held back by the cooldown is counted
  in ``suppressed`` and fires on a later update once the cooldown is over;
* firing -> resolved, when the condition no longer holds.

Alert ids are derived from (rule, state key, seq, state), so replaying the same
messages yields the same alerts with the same ids.
"""

from __future__ import annotations

__all__ = ["AlertTracker", "alert_id", "format_duration", "format_percent", "safe_label"]

import hashlib
import re
from typing import Any, Literal

from cloud_stream.alerts.rules import RuleBase
from pipeline.schemas import AlertV1

_NS = 1_000_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def alert_id(rule_id: str, key: str, seq: int, state: str) -> str:
    """Deterministic alert id: the first 32 hex digits of SHA-256 of its identity."""
    return hashlib.sha256(f"{rule_id}|{key}|{seq}|{state}".encode()).hexdigest()[:32]


def _num(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_duration(seconds: float) -> str:
    """A duration for people: ``45 s``, ``5 min``, ``1.5 h``, ``2 d``."""
    if seconds < 60:
        return f"{_num(seconds)} s"
    if seconds < 3600:
        return f"{_num(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{_num(seconds / 3600)} h"
    return f"{_num(seconds / 86_400)} d"


def format_percent(fraction: float) -> str:
    """A fraction as a percentage with at most one decimal: ``12.5%``, ``5%``."""
    return f"{_num(fraction * 100)}%"


def safe_label(value: str) -> str:
    """``value`` made fit for an alert label (letters, digits, ``_.-``, at most 64)."""
    out = _UNSAFE.sub("_", value)[:64]
    return out if out and out[0].isalnum() else ("x" + out)[:64]


class AlertTracker:
    """Firing state of one rule for one subject, as plain JSON.

    Args:
        rule_id: The rule's id.
        key: The state key of the subject (unique per rule), part of the alert ids.
    """

    def __init__(self, rule_id: str, key: str) -> None:
        self.rule_id = rule_id
        self.key = key
        self.firing = False
        self.since_ns: int | None = None
        self.last_fired_ns: int | None = None
        self.seq = 0
        self.suppressed = 0

    def update(
        self,
        rule: RuleBase,
        subject: str,
        condition: bool,
        value: float | None,
        ts_ns: int,
        *,
        site: str,
        line: str | None = None,
        summary: str,
        labels: dict[str, str] | None = None,
        scope: Literal["device", "line", "site"] = "device",
        threshold: float | None = None,
    ) -> AlertV1 | None:
        """Feed the condition at event time ``ts_ns``; the alert of a transition, if any.

        Args:
            rule: The rule (its id, severity and cooldown are used).
            subject: The alert's ``device``: a device id, or a line id for line rules.
            condition: Whether the rule's condition holds now.
            value: The measured value (in the alert).
            ts_ns: Event time that caused this update; the alert's ``ts``.
            site: Site of the subject.
            line: Production line, if known.
            summary: One line for an operator, written for the state it would emit.
            labels: Extra bounded context (values made label-safe here).
            scope: ``device``, ``line`` or ``site``.
            threshold: The rule's threshold, for the alert.
        """
        if rule.id != self.rule_id:
            raise ValueError(f"tracker of rule {self.rule_id!r} fed rule {rule.id!r}")
        if condition == self.firing:
            return None
        if condition:
            cooldown_ns = int(rule.cooldown_s * _NS)
            if self.last_fired_ns is not None and ts_ns - self.last_fired_ns < cooldown_ns:
                self.suppressed += 1
                return None
            self.last_fired_ns = ts_ns
        self.firing = condition
        self.since_ns = ts_ns
        state: Literal["firing", "resolved"] = "firing" if condition else "resolved"
        alert = AlertV1(
            id=alert_id(self.rule_id, self.key, self.seq, state),
            site=site,
            device=subject,
            seq=self.seq,
            ts=ts_ns,
            rule=rule.id,
            severity=rule.severity,
            state=state,
            scope=scope,
            line=line,
            summary=summary[:1024],
            value=value,
            threshold=threshold,
            labels={safe_label(k): safe_label(v) for k, v in (labels or {}).items()},
        )
        self.seq += 1
        return alert

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        return {
            "rule_id": self.rule_id,
            "key": self.key,
            "firing": self.firing,
            "since_ns": self.since_ns,
            "last_fired_ns": self.last_fired_ns,
            "seq": self.seq,
            "suppressed": self.suppressed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AlertTracker:
        """Rebuild from :meth:`to_state` output."""
        out = cls(str(state["rule_id"]), str(state["key"]))
        out.firing = bool(state["firing"])
        out.since_ns = None if state["since_ns"] is None else int(state["since_ns"])
        out.last_fired_ns = None if state["last_fired_ns"] is None else int(state["last_fired_ns"])
        out.seq = int(state["seq"])
        out.suppressed = int(state["suppressed"])
        return out
