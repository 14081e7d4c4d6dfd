from __future__ import annotations

import json
from typing import Any

import pytest

from cloud_stream.alerts.engine import (
    AlertTracker,
    alert_id,
    format_duration,
    format_percent,
    safe_label,
)
from cloud_stream.alerts.rules import DeviceOfflineRule
from pipeline.schemas import AlertV1, decode, encode
from tests.cloud_stream.alerts.messages import NS, T0

RULE = DeviceOfflineRule(id="offline", kind="device_offline", severity="critical", cooldown_s=60)


class Stored:
    """A tracker that goes through JSON before every update."""

    def __init__(self, key: str = "offline|plant-a/cam-01") -> None:
        self.doc: dict[str, Any] = AlertTracker("offline", key).to_state()

    def update(self, condition: bool, t_s: float, **kw: Any) -> AlertV1 | None:
        tracker = AlertTracker.from_state(json.loads(json.dumps(self.doc)))
        alert = tracker.update(
            RULE,
            "cam-01",
            condition,
            kw.pop("value", 1.0),
            T0 + int(t_s * NS),
            site="plant-a",
            summary=kw.pop("summary", "device cam-01: something"),
            **kw,
        )
        self.doc = tracker.to_state()
        assert AlertTracker.from_state(json.loads(json.dumps(self.doc))).to_state() == self.doc
        return alert


def test_fires_once_then_resolves() -> None:
    t = Stored()
    assert t.update(False, 0) is None  # nothing to resolve before a firing
    fired = t.update(True, 1, threshold=300.0, labels={"status": "offline"})
    assert fired is not None
    assert (fired.state, fired.rule, fired.severity, fired.device, fired.seq) == (
        "firing",
        "offline",
        "critical",
        "cam-01",
        0,
    )
    assert (fired.ts, fired.threshold, fired.labels) == (T0 + NS, 300.0, {"status": "offline"})
    assert t.update(True, 2) is None  # still firing: no new event
    resolved = t.update(False, 3, value=0.0)
    assert resolved is not None
    assert (resolved.state, resolved.seq, resolved.ts, resolved.value) == (
        "resolved",
        1,
        T0 + 3 * NS,
        0.0,
    )
    assert t.update(False, 4) is None
    assert decode(encode(fired)) == fired


def test_cooldown_holds_back_a_new_firing_until_it_has_passed() -> None:
    t = Stored()
    assert t.update(True, 0) is not None
    assert t.update(False, 10) is not None
    assert t.update(True, 20) is None  # 20 s after the firing, cooldown 60 s
    assert t.update(True, 59.9) is None
    assert t.doc["suppressed"] == 2
    again = t.update(True, 60)
    assert again is not None
    assert again.state == "firing"
    assert again.seq == 2


def test_ids_are_deterministic_and_distinct() -> None:
    def run(key: str) -> list[str]:
        t = Stored(key)
        alerts = [t.update(True, 0), t.update(False, 1), t.update(True, 100)]
        return [a.id for a in alerts if a is not None]

    first = run("offline|plant-a/cam-01")
    assert first == run("offline|plant-a/cam-01")
    assert len(set(first)) == 3
    assert set(first).isdisjoint(run("offline|plant-a/cam-02"))
    assert first[0] == alert_id("offline", "offline|plant-a/cam-01", 0, "firing")
    assert len(first[0]) == 32


def test_labels_are_made_safe_and_summary_is_capped() -> None:
    t = Stored()
    alert = t.update(True, 0, labels={"model version": "1.0.0+local"}, summary="x" * 2000)
    assert alert is not None
    assert alert.labels == {"model_version": "1.0.0_local"}
    assert len(alert.summary) == 1024
    assert safe_label("_x") == "x_x"
    assert safe_label("a" * 100) == "a" * 64


def test_line_scope_alert() -> None:
    t = Stored()
    alert = t.update(True, 0, scope="line", line="line1")
    assert alert is not None
    assert (alert.scope, alert.line) == ("line", "line1")


def test_wrong_rule_is_refused() -> None:
    tracker = AlertTracker("other", "k")
    with pytest.raises(ValueError, match="fed rule"):
        tracker.update(RULE, "cam-01", True, None, T0, site="plant-a", summary="s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45 s"),
        (90, "1.5 min"),
        (300, "5 min"),
        (3600, "1 h"),
        (450, "7.5 min"),
        (5400, "1.5 h"),
        (3 * 86400, "3 d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_percent() -> None:
    assert [format_percent(x) for x in (0.125, 0.05, 0.0, 1.0)] == ["12.5%", "5%", "0%", "100%"]
