"""Edge metrics: Prometheus exposition, telemetry snapshot names and percentiles."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_node.metrics import EdgeMetrics, metric_name
from pipeline.http_status import StatusServer
from pipeline.schemas import new_id, now_ns
from pipeline.schemas.telemetry import TelemetryV1

NAME = re.compile(r"^[a-z][a-z0-9_.]{0,127}$")


def fed() -> EdgeMetrics:
    m = EdgeMetrics(window=100)
    for i in range(100):
        m.observe_decision(
            source="cam-0",
            model="Conveyor-INT8",
            route="confident",
            infer_ms=1.0,
            decision_ms=float(i + 1),
        )
    m.observe_decision(
        source="cam-0",
        model="Conveyor-INT8",
        route="uncertain",
        infer_ms=2.0,
        decision_ms=5.0,
        uploaded=True,
    )
    m.observe_decision(
        source="cam-0",
        model="Conveyor-INT8",
        route="uncertain",
        infer_ms=2.0,
        decision_ms=5.0,
        skipped="budget",
    )
    m.observe_decision(
        source="cam-0",
        model="Conveyor-INT8",
        route="confident",
        infer_ms=2.0,
        decision_ms=5.0,
        skipped="duplicate",
    )
    m.observe_anomaly("press", "anomaly-int8", 3.5, "anomalous", infer_ms=0.3, decision_ms=0.5)
    m.count_sensor_fault("press", "stuck")
    m.count_input_error("cam-0", "dtype")
    m.observe_inference_error("Conveyor-INT8")
    m.observe_action("stop-line", 4.0)
    m.observe_action_error("stop-line", "timeout")
    m.set_outbox(12, 34_000)
    m.observe_eviction("frame", 3)
    m.observe_reconnect()
    m.set_connected(True)
    return m


def test_snapshot_counters_and_gauges():
    counters, gauges = fed().snapshot()
    assert counters == {
        "routes.confident": 101,
        "routes.uncertain": 2,
        "routes.anomalous": 1,
        "uploads.uncertain": 1,
        "skips.budget": 1,
        "skips.audit_duplicate": 1,
        "sensor_faults": 1,
        "sensor_faults.stuck": 1,
        "input_errors": 1,
        "input_errors.dtype": 1,
        "inference.errors": 1,
        "actions.fired": 1,
        "actions.errors": 1,
        "outbox.evicted": 3,
        "outbox.evicted.frame": 3,
        "mqtt.reconnects": 1,
    }
    assert gauges["outbox.depth"] == 12
    assert gauges["outbox.bytes"] == 34_000
    assert gauges["mqtt.connected"] == 1
    # the rolling window holds the last 100 decision latencies: 4..100, 5, 5, 5, 0.5
    assert gauges["latency.decision_p99_ms"] == pytest.approx(99.01, abs=0.5)
    assert gauges["latency.inference_p50_ms.conveyor_int8"] == pytest.approx(1.0)
    assert "latency.inference_p99_ms.anomaly_int8" in gauges
    assert all(NAME.match(n) for n in [*counters, *gauges])


def test_snapshot_fits_telemetry_message():
    counters, gauges = fed().snapshot()
    msg = TelemetryV1(
        id=new_id(),
        site="s",
        device="d",
        seq=1,
        ts=now_ns(),
        interval_s=10,
        uptime_s=1,
        counters=counters,
        gauges=gauges,
    )
    assert msg.counters["routes.uncertain"] == 2


def test_empty_snapshot():
    assert EdgeMetrics().snapshot() == ({}, {})


def test_exposition_parses_and_registries_are_separate():
    a, b = fed(), EdgeMetrics()
    body, ctype = a.exposition()
    assert ctype.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    routes = families["edgeloop_edge_routes"]
    want = {"route": "confident", "source": "cam-0"}
    confident = [s for s in routes.samples if s.labels == want and s.name.endswith("_total")]
    assert confident[0].value == 101
    assert "edgeloop_edge_inference_seconds" in families
    assert b"cam-0" not in b.exposition()[0]


def test_served_by_status_server():
    m = fed()
    server = StatusServer("127.0.0.1", 0, m.exposition, None)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            assert b"edgeloop_edge_decision_seconds_bucket" in r.read()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("routes", "uncertain"), "routes.uncertain"),
        (("skips", "Audit-Budget"), "skips.audit_budget"),
        (
            ("latency.inference_p99_ms", "Conveyor INT8 v2"),
            "latency.inference_p99_ms.conveyor_int8_v2",
        ),
        (("9lives",), "m9lives"),
    ],
)
def test_metric_name(parts, name):
    assert metric_name(*parts) == name
    assert NAME.match(name)
