"""The fleet table's rows: status, telemetry, results, escalation rate, JSON round trip."""

from __future__ import annotations

import json

import pytest

from cloud_stream.worker import fleet
from pipeline.schemas import ModelRef
from tests.cloud_stream.alerts.messages import NS, T0, anomaly, result, status, telemetry

MODEL = ModelRef(name="conveyor-int8", version="1.2.0", sha256="ab" * 32)


def _roundtrip(row: fleet.FleetRow) -> fleet.FleetRow:
    out = json.loads(json.dumps(row, allow_nan=False))
    assert out == row
    return dict(out)


def test_a_first_status_makes_a_row() -> None:
    row = fleet.observe_status(None, status(1, T0, "online", models=[MODEL], software="0.3.1"))
    assert row["site"] == "plant-a"
    assert row["device"] == "cam-01"
    assert row["state"] == "online"
    assert row["software"] == "0.3.1"
    assert row["model"] == "conveyor-int8@1.2.0"
    assert row["last_seen_ns"] == T0
    assert row["changed_ns"] == T0
    assert row["results"] == 0
    assert fleet.escalation_rate(row) is None


def test_several_models_are_listed() -> None:
    other = ModelRef(name="machine-anomaly-int8", version="2.0.0", sha256="cd" * 32)
    row = fleet.observe_status(None, status(1, T0, "online", models=[MODEL, other]))
    assert row["model"] == "conveyor-int8@1.2.0,machine-anomaly-int8@2.0.0"


def test_an_older_status_does_not_override_a_newer_one() -> None:
    row = fleet.observe_status(None, status(5, T0 + 10 * NS, "degraded", software="0.4.0"))
    row = fleet.observe_status(row, status(4, T0, "online", software="0.3.0"))
    assert row["state"] == "degraded"
    assert row["software"] == "0.4.0"
    assert row["last_seen_ns"] == T0 + 10 * NS


def test_a_newer_status_overrides() -> None:
    row = fleet.observe_status(None, status(4, T0, "online"))
    row = fleet.observe_status(row, status(5, T0 + NS, "degraded", reason="camera lost"))
    assert row["state"] == "degraded"


def test_a_status_without_models_keeps_the_known_model() -> None:
    row = fleet.observe_status(None, status(1, T0, "online", models=[MODEL]))
    row = fleet.observe_status(row, status(2, T0 + NS, "online"))
    assert row["model"] == "conveyor-int8@1.2.0"


def test_the_offline_last_will_does_not_move_last_seen() -> None:
    row = fleet.observe_status(None, status(1, T0, "online"))
    row = fleet.observe_result(row, result(2, T0 + 30 * NS))
    will = status(3, T0 + 60 * NS, "offline", reason="connection lost")
    row = fleet.observe_status(row, will)
    assert row["state"] == "offline"
    assert row["last_seen_ns"] == T0 + 30 * NS  # the broker spoke, not the device
    assert row["changed_ns"] == T0 + 60 * NS  # but the row changed then


def test_the_last_will_of_the_current_connection_marks_the_device_offline() -> None:
    # The edge builds its last will before it connects, and its online status on
    # connect: the will that the broker publishes later is older than that online.
    will = status(10, T0, "offline", reason="connection lost")
    online = status(11, T0 + NS // 100, "online")
    row = fleet.observe_status(None, online)
    row = fleet.observe_result(row, result(12, T0 + 5 * NS))
    changed = row["changed_ns"]
    row = fleet.observe_status(row, will)
    assert row["state"] == "offline"
    assert row["last_seen_ns"] == T0 + 5 * NS
    assert row["changed_ns"] > changed  # its fleet point comes after the online one
    # and the next connection's online status wins again
    row = fleet.observe_status(row, status(14, T0 + 20 * NS, "online"))
    assert row["state"] == "online"


def test_a_redelivered_offline_after_a_newer_online_does_not_win() -> None:
    row = fleet.observe_status(None, status(10, T0, "offline", reason="stopped"))
    row = fleet.observe_status(row, status(11, T0 + 20 * NS, "online"))
    row = fleet.observe_status(row, status(10, T0, "offline", reason="stopped"))
    assert row["state"] == "online"


def test_telemetry_sets_the_outbox_depth_and_last_seen() -> None:
    row = fleet.observe_telemetry(None, telemetry(1, T0, {"outbox.depth": 42.0}))
    assert row["outbox_depth"] == 42.0
    assert row["last_seen_ns"] == T0
    assert row["state"] == "unknown"
    row = fleet.observe_telemetry(row, telemetry(2, T0 + NS, {"latency.p99_ms": 3.0}))
    assert row["outbox_depth"] == 42.0  # a snapshot without the gauge keeps it
    assert row["last_seen_ns"] == T0 + NS


def test_last_seen_never_goes_back() -> None:
    row = fleet.observe_result(None, result(2, T0 + 10 * NS))
    row = fleet.observe_result(row, result(1, T0))
    assert row["last_seen_ns"] == T0 + 10 * NS
    assert row["results"] == 2


def test_escalation_rate_counts_only_classify_results() -> None:
    row = None
    for seq in range(4):
        route = "uncertain" if seq == 0 else "confident"
        row = fleet.observe_result(row, result(seq, T0, route=route))
    assert row is not None
    assert fleet.escalation_rate(row) == pytest.approx(0.25)
    for seq in range(4, 10):
        row = fleet.observe_result(row, anomaly(seq, T0, anomalous=True))
    assert fleet.escalation_rate(row) == pytest.approx(0.25)
    assert row["results"] == 10


def test_escalation_rate_decays_with_event_time() -> None:
    row = fleet.observe_result(None, result(1, T0, route="uncertain"))
    assert fleet.escalation_rate(row) == pytest.approx(1.0)
    later = T0 + int(fleet.HALF_LIFE_S * NS)
    row = fleet.observe_result(row, result(2, later, route="confident"))
    # the uncertain result now weighs 1/2: 0.5 / (0.5 + 1)
    assert fleet.escalation_rate(row) == pytest.approx(1 / 3)
    much_later = later + int(20 * fleet.HALF_LIFE_S * NS)
    row = fleet.observe_result(row, result(3, much_later, route="confident"))
    assert fleet.escalation_rate(row) == pytest.approx(0.0, abs=1e-5)


def test_escalation_rate_without_decay_within_one_instant() -> None:
    row = None
    for seq, route in enumerate(["uncertain", "uncertain", "confident", "audit"]):
        row = fleet.observe_result(row, result(seq, T0, route=route))
    assert row is not None
    assert fleet.escalation_rate(row) == pytest.approx(0.5)


def test_a_late_result_does_not_decay_newer_ones_backwards() -> None:
    row = fleet.observe_result(None, result(2, T0 + 100 * NS, route="uncertain"))
    row = fleet.observe_result(row, result(1, T0, route="confident"))
    assert row["esc_ts"] == T0 + 100 * NS
    assert fleet.escalation_rate(row) == pytest.approx(0.5)


def test_rows_survive_a_json_round_trip_at_every_step() -> None:
    row = _roundtrip(fleet.observe_status(None, status(1, T0, "online", models=[MODEL])))
    row = _roundtrip(fleet.observe_telemetry(row, telemetry(2, T0 + NS, {"outbox.depth": 3.0})))
    row = _roundtrip(fleet.observe_result(row, result(3, T0 + 2 * NS, route="uncertain")))
    row = _roundtrip(fleet.observe_result(row, result(4, T0 + 3 * NS)))
    row = _roundtrip(fleet.observe_status(row, status(5, T0 + 4 * NS, "offline")))
    assert row["state"] == "offline"
    assert row["results"] == 2
    assert row["outbox_depth"] == 3.0
    assert row["last_seen_ns"] == T0 + 3 * NS
    rate = fleet.escalation_rate(row)
    assert rate is not None
    assert 0.49 < rate < 0.5


def test_observing_does_not_mutate_the_stored_row() -> None:
    row = fleet.observe_status(None, status(1, T0, "online"))
    before = dict(row)
    fleet.observe_result(row, result(2, T0 + NS))
    assert row == before


def test_every_update_is_a_new_revision_even_with_an_older_timestamp() -> None:
    """Devices' clocks differ: a result stamped earlier than the newest still changes
    the row (its count), so the row must be published again (the tick compares revisions)."""
    row = fleet.observe_result(None, result(2, T0 + 60 * NS))
    before = (row["rev"], row["changed_ns"])
    row = fleet.observe_result(row, result(1, T0))
    assert row["results"] == 2
    assert row["changed_ns"] == before[1], "the point keeps its deterministic time"
    assert row["rev"] == before[0] + 1
