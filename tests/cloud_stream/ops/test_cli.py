"""``edgeloop alerts`` and ``edgeloop fleet`` without a server: options and row formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_stream.ops.alerts_cli import alert_from_row, alert_table
from cloud_stream.ops.fleet_cli import fleet_from_row, fleet_table
from pipeline.cli.main import main

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000 + 250_000_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alerts", "--since", "1y"], "argument --since: '1y' is not a duration"),
        (["alerts", "--since", "0m"], "is zero"),
        (["alerts", "--severity", "fatal"], "unknown severity fatal"),
        (["alerts", "--severity", "info,bad"], "unknown severity bad"),
        (["alerts", "--min-severity", "fatal"], "invalid choice"),
        (["alerts", "--severity", "info", "--min-severity", "info"], "not allowed with"),
        (["alerts", "--state", "open"], "invalid choice"),
        (["alerts", "--limit", "0"], "at least 1"),
        (["fleet", "--stale-after", "five"], "not a duration"),
    ],
)
def test_bad_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_open_and_resolved_contradict(capsys):
    assert main(["alerts", "--open", "--state", "resolved"]) == 2
    assert "--open" in capsys.readouterr().err


def _alert_row(**over):
    row = {
        "_time": T0,
        "site": "plant-a",
        "line": "l1",
        "subject": "l1",
        "rule": "defect-rate",
        "severity": "critical",
        "state": "firing",
        "scope": "line",
        "summary": "defect rate 12% over 5m",
        "value": 0.12,
        "threshold": 0.05,
        "id": "a1",
        "seq": 7,
        "label_window": "5m",
        "label_empty": None,
        "result": "_result",
        "table": 0,
    }
    row.update(over)
    return row


def test_alert_json_line():
    assert alert_from_row(_alert_row()) == {
        "time": "2026-03-01T12:00:00.250000Z",
        "severity": "critical",
        "state": "firing",
        "rule": "defect-rate",
        "subject": "l1",
        "scope": "line",
        "site": "plant-a",
        "line": "l1",
        "value": 0.12,
        "threshold": 0.05,
        "summary": "defect rate 12% over 5m",
        "id": "a1",
        "seq": 7,
        "labels": {"window": "5m"},
    }


def test_alert_table_columns():
    rows = [_alert_row(), _alert_row(line=None, value=None, threshold=None, summary=None)]
    lines = alert_table(rows).splitlines()
    assert lines[0].split() == [
        "time", "severity", "state", "rule", "subject", "site/line", "value/threshold", "summary"
    ]  # fmt: skip
    first = lines[1].split()
    assert first[:7] == [
        "2026-03-01T12:00:00Z", "critical", "firing", "defect-rate", "l1", "plant-a/l1",
        "0.12/0.05",
    ]  # fmt: skip
    assert lines[1].endswith("defect rate 12% over 5m")
    assert lines[2].split()[5:] == ["plant-a", "-"]


def _fleet_row(**over):
    row = {
        "site": "plant-a",
        "device": "cam-01",
        "state": "online",
        "model": "defects@3",
        "software": "1.2.0",
        "last_seen_ns": T0_NS - 12 * 1_000_000_000,
        "outbox_depth": 3.0,
        "escalation_rate": 0.0512,
        "results": 1200,
    }
    row.update(over)
    return row


def test_fleet_json_and_staleness():
    fresh = fleet_from_row(_fleet_row(), now_ns=T0_NS, stale_after=timedelta(minutes=5))
    assert fresh == {
        "site": "plant-a",
        "device": "cam-01",
        "state": "online",
        "model": "defects@3",
        "software": "1.2.0",
        "last_seen": "2026-03-01T11:59:48.250000Z",
        "last_seen_ns": T0_NS - 12 * 1_000_000_000,
        "age_s": 12.0,
        "outbox_depth": 3.0,
        "escalation_rate": 0.0512,
        "results": 1200,
        "stale": False,
    }
    assert fleet_from_row(_fleet_row(), now_ns=T0_NS, stale_after=timedelta(seconds=11))["stale"]
    assert not fleet_from_row(_fleet_row(), now_ns=T0_NS, stale_after=timedelta(seconds=12))[
        "stale"
    ]


def test_fleet_device_never_seen_is_stale():
    d = fleet_from_row(_fleet_row(last_seen_ns=None), now_ns=T0_NS, stale_after=timedelta(days=1))
    assert (d["last_seen"], d["age_s"], d["stale"]) == (None, None, True)


def test_fleet_table_columns():
    stale = timedelta(minutes=5)
    devices = [
        fleet_from_row(_fleet_row(), now_ns=T0_NS, stale_after=stale),
        fleet_from_row(
            _fleet_row(device="cam-02", state="offline", last_seen_ns=T0_NS - 7200 * 10**9),
            now_ns=T0_NS,
            stale_after=stale,
        ),
    ]
    lines = fleet_table(devices).splitlines()
    assert lines[0].split() == [
        "site", "device", "state", "model", "software", "last", "seen", "outbox", "escalation",
        "results", "stale",
    ]  # fmt: skip
    assert "12s ago (2026-03-01T11:59:48Z)" in lines[1]
    assert lines[1].split()[-3:] == ["3", "0.0512", "1200"]
    assert not lines[1].endswith("STALE")
    assert "2h ago" in lines[2]
    assert lines[2].endswith("STALE")
