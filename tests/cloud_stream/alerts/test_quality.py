from __future__ import annotations

from typing import Any

from cloud_stream.alerts.quality import AnomalySustainedEvaluator, DefectRateEvaluator
from cloud_stream.alerts.rules import AnomalySustainedRule, DefectRateRule
from pipeline.schemas import AlertV1
from tests.cloud_stream.alerts.messages import NS, T0, Table, anomaly, result, verdict


def defect_rule(**fields: Any) -> DefectRateRule:
    base: dict[str, Any] = {
        "id": "defects",
        "kind": "defect_rate",
        "window_s": 300,
        "step_s": 60,
        "threshold": 0.05,
        "min_samples": 20,
        "cooldown_s": 600,
    }
    base.update(fields)
    return DefectRateRule(**base)


def parts(start_seq: int, t_s: float, labels: list[str], **fields: Any) -> list[Any]:
    """One result per label, a second apart from ``t_s``."""
    return [
        result(start_seq + i, T0 + int((t_s + i) * NS), label=label, **fields)
        for i, label in enumerate(labels)
    ]


def test_no_alert_below_min_samples() -> None:
    table = Table([DefectRateEvaluator(defect_rule())])
    assert table.feed(*parts(0, 0, ["scratch"] * 19)) == []


def test_fires_with_a_readable_summary_and_resolves() -> None:
    table = Table([DefectRateEvaluator(defect_rule())])
    alerts = table.feed(*parts(0, 0, ["ok"] * 17 + ["scratch", "crack", "scratch"]))
    [fired] = alerts
    assert (fired.state, fired.scope, fired.device, fired.line, fired.site) == (
        "firing",
        "line",
        "line1",
        "line1",
        "plant-a",
    )
    assert fired.summary == "line line1: defect rate 15% over 5 min (threshold 5%, 20 parts)"
    assert fired.value == 0.15
    assert fired.threshold == 0.05
    assert fired.labels == {"top_defect": "scratch"}
    assert fired.ts == T0 + 19 * NS
    # More good parts bring the rate to 3/60 = 5%, not above the threshold: resolved.
    [resolved] = table.feed(*parts(20, 20, ["ok"] * 40))
    assert resolved.state == "resolved"
    assert resolved.summary.startswith("line line1: defect rate back to 5% over 5 min")
    assert resolved.ts == T0 + 59 * NS


def test_old_defects_leave_the_window() -> None:
    table = Table([DefectRateEvaluator(defect_rule(min_samples=5))])
    [fired] = table.feed(*parts(0, 0, ["dent"] * 5))
    assert fired.state == "firing"
    # 10 minutes later the dents are out of the window; good parts resolve it.
    alerts = table.feed(*parts(5, 600, ["ok"] * 5))
    assert [a.state for a in alerts] == ["resolved"]
    assert alerts[0].value == 0.0


def test_line_scope_ignores_results_without_line_and_pools_devices() -> None:
    ev = DefectRateEvaluator(defect_rule(min_samples=4))
    assert ev.keys(result(0, T0, line=None)) == []
    assert ev.keys(anomaly(0, T0, True)) == []
    assert ev.keys(verdict(0, T0, "ok", "ok")) == []
    assert ev.keys(result(0, T0)) == ["defects|plant-a/line1"]
    table = Table([ev])
    msgs = parts(0, 0, ["ok", "crack"]) + parts(0, 2, ["crack", "ok"], device="cam-02")
    [fired] = table.feed(*msgs)
    assert fired.summary.endswith("(threshold 5%, 4 parts)")
    assert set(table.data) == {"defects|plant-a/line1"}


def test_device_scope() -> None:
    ev = DefectRateEvaluator(defect_rule(scope="device", min_samples=2))
    assert ev.keys(result(0, T0, line=None)) == ["defects|plant-a/cam-01"]
    [fired] = Table([ev]).feed(*parts(0, 0, ["crack", "crack"], line=None))
    assert (fired.scope, fired.device, fired.line) == ("device", "cam-01", None)
    assert fired.summary.startswith("device cam-01: defect rate 100%")


def test_ok_labels_are_configurable() -> None:
    ev = DefectRateEvaluator(defect_rule(min_samples=2, ok_labels=["ok", "dent"]))
    assert Table([ev]).feed(*parts(0, 0, ["dent", "ok"])) == []


def test_redelivered_results_are_not_counted_twice() -> None:
    table = Table([DefectRateEvaluator(defect_rule(min_samples=3))])
    msgs = parts(0, 0, ["crack", "ok"])
    assert table.feed(*msgs, *msgs) == []  # still only 2 parts
    assert len(table.feed(*parts(2, 2, ["ok"]))) == 1


def test_cooldown_stops_an_alert_storm() -> None:
    table = Table([DefectRateEvaluator(defect_rule(min_samples=2, window_s=60, step_s=60))])
    states: list[str] = []
    seq = 0
    # The rate flips every minute for 10 minutes.
    for minute in range(10):
        label = "crack" if minute % 2 == 0 else "ok"
        batch = parts(seq, minute * 60, [label, label])
        seq += 2
        states += [a.state for a in table.feed(*batch)]
    # Fired at 0, resolved at 1, held back at 2-9 by the 10 min cooldown, but the
    # resolved events only follow firings.
    assert states == ["firing", "resolved"]
    # Still defective after the cooldown: fires again.
    later = table.feed(*parts(seq, 660, ["crack", "crack"]))
    assert [(a.state, a.seq) for a in later] == [("firing", 2)]


def run_replay(messages: list[Any]) -> list[AlertV1]:
    return Table([DefectRateEvaluator(defect_rule(min_samples=5))]).feed(*messages)


def test_a_replay_gives_the_same_alerts() -> None:
    msgs = parts(0, 0, ["crack"] * 5) + parts(5, 600, ["ok"] * 6) + parts(11, 1300, ["dent"] * 5)
    first = run_replay(msgs)
    assert [a.state for a in first] == ["firing", "resolved", "firing"]
    assert run_replay(msgs) == first


def anomaly_rule(**fields: Any) -> AnomalySustainedRule:
    base: dict[str, Any] = {
        "id": "machine",
        "kind": "anomaly_sustained",
        "for_windows": 3,
        "clear_windows": 2,
        "cooldown_s": 0,
    }
    base.update(fields)
    return AnomalySustainedRule(**base)


def windows(start_seq: int, flags: str, **fields: Any) -> list[Any]:
    """Anomaly results from a string of A (anomalous) and n (normal)."""
    return [
        anomaly(start_seq + i, T0 + (start_seq + i) * NS, f == "A", **fields)
        for i, f in enumerate(flags)
    ]


def test_sustained_anomaly_fires_after_consecutive_windows() -> None:
    table = Table([AnomalySustainedEvaluator(anomaly_rule())])
    assert table.feed(*windows(0, "AAnAA")) == []  # interrupted runs
    [fired] = table.feed(*windows(5, "A"))
    assert fired.state == "firing"
    assert fired.summary == (
        "device edge-01 source press1: sensor anomaly for 3 windows in a row "
        "(score 4.5, threshold 3)"
    )
    assert (fired.value, fired.threshold, fired.labels) == (4.5, 3.0, {"source": "press1"})
    assert table.feed(*windows(6, "AAnA")) == []  # one normal window does not clear
    [resolved] = table.feed(*windows(10, "nn"))
    assert resolved.state == "resolved"
    assert "normal again for 2 windows" in resolved.summary


def test_sources_are_separate_and_results_out_of_order_are_ignored() -> None:
    ev = AnomalySustainedEvaluator(anomaly_rule())
    assert ev.keys(anomaly(0, T0, True)) == ["machine|plant-a/edge-01/press1"]
    assert ev.keys(result(0, T0)) == []
    table = Table([ev])
    msgs = windows(0, "AA") + windows(2, "A", source="press2")
    assert table.feed(*msgs) == []
    assert table.feed(*windows(1, "A")) == []  # a redelivery of seq 1
    assert len(table.feed(*windows(3, "A"))) == 1


def test_a_quiet_line_state_is_idle_unless_firing() -> None:
    ev = DefectRateEvaluator(defect_rule())
    table = Table([ev])
    table.feed(*parts(0, 0, ["ok"] * 5))
    key = "defects|plant-a/line1"
    assert not ev.idle(T0 + 10 * NS, table.load(ev, key)), "parts in the window"
    assert ev.idle(T0 + 400 * NS, table.load(ev, key)), "window empty, not firing"
    assert not ev.idle(T0 - 3600 * NS, table.load(ev, key)), "clock behind the events"
    table.feed(*parts(5, 5, ["crack"] * 20))
    assert not ev.idle(T0 + 4000 * NS, table.load(ev, key)), "a firing alert is kept"
