from __future__ import annotations

from typing import Any

from cloud_stream.alerts.devices import DeviceOfflineEvaluator, TelemetryGaugeEvaluator
from cloud_stream.alerts.rules import DeviceOfflineRule, TelemetryGaugeRule
from tests.cloud_stream.alerts.messages import NS, T0, Table, result, status, telemetry, verdict

KEY = "offline|plant-a/cam-01"


def offline_table(after_s: float = 120) -> Table:
    rule = DeviceOfflineRule(
        id="offline", kind="device_offline", after_s=after_s, cooldown_s=0, severity="critical"
    )
    return Table([DeviceOfflineEvaluator(rule)])


def at(seconds: float) -> int:
    return T0 + int(seconds * NS)


def test_keys_come_from_status_results_and_telemetry() -> None:
    ev = DeviceOfflineEvaluator(DeviceOfflineRule(id="offline", kind="device_offline"))
    assert ev.keys(status(0, T0, "online")) == [KEY]
    assert ev.keys(result(0, T0)) == [KEY]
    assert ev.keys(telemetry(0, T0)) == [KEY]
    assert ev.keys(verdict(0, T0, "ok", "ok")) == []
    assert ev.ticks
    assert ev.owns(KEY)
    assert not ev.owns("offline2|plant-a/cam-01")


def test_offline_status_fires_on_tick_after_the_delay_and_online_resolves() -> None:
    table = offline_table()
    assert table.feed(status(0, at(0), "online"), telemetry(1, at(10))) == []
    assert table.feed(status(2, at(20), "offline", reason="stopped")) == []
    assert table.tick(at(100)) == []  # 80 s after the last message
    [fired] = table.tick(at(140))
    assert (fired.state, fired.device, fired.ts, fired.value) == ("firing", "cam-01", at(140), 120)
    assert fired.summary == "device cam-01: offline for 2 min (stopped) (after 2 min)"
    assert fired.labels == {"status": "offline"}
    assert table.tick(at(500)) == []  # still firing: nothing new
    [resolved] = table.feed(status(3, at(600), "online"))
    assert resolved.state == "resolved"
    assert resolved.summary == "device cam-01: back after 9.7 min"
    assert resolved.ts == at(600)


def test_last_will_counts_from_the_newest_message_not_its_own_old_ts() -> None:
    table = offline_table()
    table.feed(status(0, at(0), "online"), telemetry(5, at(300)))
    # The will was set at connect (ts 0) and delivered after the connection died.
    table.feed(status(1, at(0), "offline", reason="connection lost"))
    assert table.state(KEY)["last_seen_ns"] == at(300)
    assert table.tick(at(400)) == []
    [fired] = table.tick(at(420))
    assert "offline for 2 min (connection lost)" in fired.summary


def test_while_offline_late_results_do_not_resolve() -> None:
    table = offline_table()
    table.feed(status(0, at(0), "offline"))
    assert len(table.tick(at(200))) == 1
    assert table.feed(result(1, at(250)), telemetry(2, at(260))) == []
    assert table.state(KEY)["last_seen_ns"] == at(0)
    assert table.feed(status(3, at(270), "degraded"))[0].state == "resolved"


def test_silence_fires_and_any_message_resolves() -> None:
    table = offline_table()
    table.feed(result(0, at(0)))
    [fired] = table.tick(at(130))
    assert fired.summary == (
        "device cam-01: silent for 2.2 min: no status, result or telemetry (after 2 min)"
    )
    assert fired.labels == {"status": "unknown"}
    [resolved] = table.feed(telemetry(1, at(200)))
    assert resolved.state == "resolved"
    assert resolved.value == 200


def test_ticks_are_replayable() -> None:
    def run() -> list[str]:
        table = offline_table()
        table.feed(result(0, at(0)))
        out = table.tick(at(60)) + table.tick(at(130)) + table.feed(result(1, at(140)))
        return [a.id for a in out]

    first = run()
    assert len(first) == 2
    assert run() == first


def gauge_table(**fields: Any) -> Table:
    base: dict[str, Any] = {
        "id": "backlog",
        "kind": "telemetry_gauge",
        "gauge": "outbox.depth",
        "above": 100,
        "cooldown_s": 0,
    }
    base.update(fields)
    return Table([TelemetryGaugeEvaluator(TelemetryGaugeRule(**base))])


def test_gauge_above_for_samples_then_back() -> None:
    table = gauge_table(for_samples=2)
    assert table.feed(telemetry(0, at(0), {"outbox.depth": 150})) == []
    assert table.feed(telemetry(1, at(10), {"outbox.depth": 50})) == []  # run broken
    assert table.feed(telemetry(2, at(20), {"outbox.depth": 150})) == []
    [fired] = table.feed(telemetry(3, at(30), {"outbox.depth": 180}))
    assert fired.summary == "device cam-01: outbox.depth 180 above 100"
    assert (fired.value, fired.threshold, fired.labels) == (180, 100, {"gauge": "outbox.depth"})
    assert table.feed(telemetry(3, at(30), {"outbox.depth": 10})) == []  # redelivered seq
    [resolved] = table.feed(telemetry(4, at(40), {"outbox.depth": 10}))
    assert resolved.summary == "device cam-01: outbox.depth back to 10 (limit: above 100)"


def test_gauge_below_and_missing_gauge() -> None:
    ev = TelemetryGaugeEvaluator(
        TelemetryGaugeRule(
            id="link", kind="telemetry_gauge", gauge="mqtt.connected", below=0.5, above=2
        )
    )
    assert ev.keys(telemetry(0, at(0), {"outbox.depth": 1})) == []
    assert ev.keys(result(0, at(0))) == []
    [fired] = Table([ev]).feed(telemetry(1, at(0), {"mqtt.connected": 0.0}))
    assert fired.summary == "device cam-01: mqtt.connected 0 below 0.5"
    assert fired.threshold == 0.5
