"""The per-subject state of each rule kind, as plain JSON for a changelog-backed table.

Every state has a ``key`` (its table key, unique across all rules) and an
:class:`~cloud_stream.alerts.engine.AlertTracker`; ``to_state()`` gives a small
JSON-able dict and ``from_state()`` rebuilds an equal object.
"""

from __future__ import annotations

__all__ = [
    "AgreementState",
    "AlertState",
    "AnomalyState",
    "DefectRateState",
    "DeviceState",
    "GaugeState",
    "PsiState",
]

from typing import Any, ClassVar

from cloud_stream.alerts.engine import AlertTracker
from cloud_stream.alerts.windows import HoppingCounts, SeqDedup
from cloud_stream.drift.audit import AgreementAudit, ScoreShift


class AlertState:
    """Base of the states: the key and the alert tracker, plus named plain fields.

    Subclasses list their plain JSON fields (str, int, float, None) in ``_plain``
    with their defaults.
    """

    _plain: ClassVar[dict[str, Any]] = {}

    def __init__(self, key: str, rule_id: str) -> None:
        self.key = key
        self.tracker = AlertTracker(rule_id, key)
        for name, default in self._plain.items():
            setattr(self, name, default)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        out: dict[str, Any] = {"key": self.key, "tracker": self.tracker.to_state()}
        out.update({name: getattr(self, name) for name in self._plain})
        return out

    def _load(self, state: dict[str, Any]) -> None:
        self.tracker = AlertTracker.from_state(state["tracker"])
        for name in self._plain:
            setattr(self, name, state[name])


class DefectRateState(AlertState):
    """Counts per label of one line (or device) over the rule's window."""

    _plain: ClassVar[dict[str, Any]] = {"site": None, "line": None, "device": None}
    site: str | None
    line: str | None
    device: str | None

    def __init__(self, key: str, rule_id: str, window_s: int, step_s: int) -> None:
        super().__init__(key, rule_id)
        self.counts = HoppingCounts(window_s, step_s)
        self.dedup = SeqDedup()

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        return {
            **super().to_state(),
            "counts": self.counts.to_state(),
            "dedup": self.dedup.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DefectRateState:
        """Rebuild from :meth:`to_state` output."""
        counts = HoppingCounts.from_state(state["counts"])
        out = cls(state["key"], state["tracker"]["rule_id"], counts.size_s, counts.step_s)
        out._load(state)
        out.counts = counts
        out.dedup = SeqDedup.from_state(state["dedup"])
        return out


class AnomalyState(AlertState):
    """Runs of anomalous and normal windows of one device's sensor source."""

    _plain: ClassVar[dict[str, Any]] = {
        "site": None,
        "device": None,
        "source": None,
        "line": None,
        "anomalous_run": 0,
        "normal_run": 0,
        "last_seq": None,
    }
    site: str | None
    device: str | None
    source: str | None
    line: str | None
    anomalous_run: int
    normal_run: int
    last_seq: int | None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AnomalyState:
        """Rebuild from :meth:`to_state` output."""
        out = cls(state["key"], state["tracker"]["rule_id"])
        out._load(state)
        return out


class DeviceState(AlertState):
    """What was last heard from a device: its status and the newest event time."""

    _plain: ClassVar[dict[str, Any]] = {
        "site": None,
        "device": None,
        "status": None,
        "reason": None,
        "last_seen_ns": None,
    }
    site: str | None
    device: str | None
    status: str | None
    reason: str | None
    last_seen_ns: int | None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DeviceState:
        """Rebuild from :meth:`to_state` output."""
        out = cls(state["key"], state["tracker"]["rule_id"])
        out._load(state)
        return out


class GaugeState(AlertState):
    """Consecutive out-of-range telemetry snapshots of one device's gauge."""

    _plain: ClassVar[dict[str, Any]] = {"breach_run": 0, "last_value": None, "last_seq": None}
    breach_run: int
    last_value: float | None
    last_seq: int | None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GaugeState:
        """Rebuild from :meth:`to_state` output."""
        out = cls(state["key"], state["tracker"]["rule_id"])
        out._load(state)
        return out


class AgreementState(AlertState):
    """Agreement audit of one device and edge model version."""

    _plain: ClassVar[dict[str, Any]] = {"line": None}
    line: str | None

    def __init__(self, key: str, rule_id: str, window_s: int, step_s: int) -> None:
        super().__init__(key, rule_id)
        self.audit = AgreementAudit(window_s, step_s)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        return {**super().to_state(), "audit": self.audit.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AgreementState:
        """Rebuild from :meth:`to_state` output."""
        audit = AgreementAudit.from_state(state["audit"])
        out = cls(
            state["key"], state["tracker"]["rule_id"], audit.counts.size_s, audit.counts.step_s
        )
        out._load(state)
        out.audit = audit
        return out


class PsiState(AlertState):
    """Score histogram of one device and model version; no shift until a reference is known."""

    _plain: ClassVar[dict[str, Any]] = {"line": None}
    line: str | None

    def __init__(self, key: str, rule_id: str) -> None:
        super().__init__(key, rule_id)
        self.shift: ScoreShift | None = None

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        shift = None if self.shift is None else self.shift.to_state()
        return {**super().to_state(), "shift": shift}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PsiState:
        """Rebuild from :meth:`to_state` output."""
        out = cls(state["key"], state["tracker"]["rule_id"])
        out._load(state)
        if state["shift"] is not None:
            out.shift = ScoreShift.from_state(state["shift"])
        return out
