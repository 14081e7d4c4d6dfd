"""The per-message handlers of the worker's agents, with dict tables and fake topics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloud_stream.drift.audit import AgreementAudit, ScoreShift
from cloud_stream.worker.records import Record
from pipeline.errors import SchemaError
from pipeline.schemas import encode
from tests.cloud_stream.alerts.messages import NS, T0, result, status, telemetry, verdict
from tests.cloud_stream.worker.fakes import (
    FakeEvent,
    FakeMessage,
    FakeStream,
    Harness,
    builtin_ref,
    harness,
    metric,
)

DEVICE_DEFECTS = """
rules:
  - id: defects_dev
    kind: defect_rate
    scope: device
    threshold: 0.2
    min_samples: 5
    window_s: 300
    step_s: 60
    cooldown_s: 0
"""

LINE_DEFECTS = """
rules:
  - id: defects_line
    kind: defect_rate
    scope: line
    threshold: 0.2
    min_samples: 4
    window_s: 300
    step_s: 60
    cooldown_s: 0
"""

DRIFT = """
rules:
  - id: agreement_low
    kind: drift_agreement
    threshold: 0.9
    min_verdicts: 3
    window_s: 600
    step_s: 60
    cooldown_s: 0
"""

HEALTH = """
rules:
  - id: outbox_full
    kind: telemetry_gauge
    gauge: outbox.depth
    above: 1000
    cooldown_s: 0
  - id: offline
    kind: device_offline
    after_s: 60
    cooldown_s: 0
"""


def _feed(h: Harness, handler: Any, topic: str, *messages: Any) -> None:
    async def go() -> None:
        for m in messages:
            await handler(h.record(topic, m))

    asyncio.run(go())


# --- results ---------------------------------------------------------------------------------


def test_a_result_updates_the_fleet_row() -> None:
    h = harness()
    _feed(h, h.agents.on_result, "edgeloop.results", result(1, T0, route="uncertain"))
    row = h.tables.fleet["cam-01"]
    assert row["results"] == 1
    assert row["last_seen_ns"] == T0
    assert row["esc_n"] == 1.0
    assert row["esc_w"] == 1.0


def test_a_result_of_a_model_with_a_score_reference_updates_the_score_shift() -> None:
    h = harness()
    ref = builtin_ref("conveyor-int8")
    scores = [0.99, 0.97, 0.6, 0.95]
    msgs = [result(i, T0 + i * NS, model=ref, score=s) for i, s in enumerate(scores)]
    _feed(h, h.agents.on_result, "edgeloop.results", *msgs)
    key = f"shift|plant-a/cam-01/conveyor-int8@{ref.version}"
    assert list(h.tables.audit) == [key]
    shift = ScoreShift.from_state(h.tables.audit[key])
    value, n = shift.psi(T0 + 4 * NS)
    assert n == 4
    assert value is not None
    assert shift.device == "cam-01"
    assert shift.model_version == ref.version


def test_a_result_of_an_unknown_model_has_no_score_shift() -> None:
    h = harness()  # the default test model ref (sha ab..ab) is not a package
    _feed(h, h.agents.on_result, "edgeloop.results", result(1, T0))
    assert dict(h.tables.audit) == {}
    assert "cam-01" in h.tables.fleet


def test_device_defect_rule_fires_an_alert() -> None:
    h = harness(DEVICE_DEFECTS)
    msgs = [result(i, T0 + i * NS, label="scratch") for i in range(5)]
    _feed(h, h.agents.on_result, "edgeloop.results", *msgs[:4])
    assert h.fake("alerts").sent == []  # fewer than min_samples
    _feed(h, h.agents.on_result, "edgeloop.results", msgs[4])
    [alert] = h.fake("alerts").alerts()
    assert alert.rule == "defects_dev"
    assert alert.state == "firing"
    assert alert.device == "cam-01"
    assert alert.scope == "device"
    assert alert.value == pytest.approx(1.0)
    assert any(k.startswith("defects_dev|") for k in h.tables.rules)
    assert (
        metric(
            h.components.metrics, "edgeloop_worker_alerts_total", rule="defects_dev", state="firing"
        )
        == 1
    )
    assert h.fake("by_line").sent == []  # no line rules: nothing re-keyed


def test_device_defect_rule_resolves_when_the_rate_falls() -> None:
    h = harness(DEVICE_DEFECTS)
    bad = [result(i, T0 + i * NS, label="scratch") for i in range(5)]
    good = [result(i, T0 + i * NS, label="ok") for i in range(5, 40)]
    _feed(h, h.agents.on_result, "edgeloop.results", *bad, *good)
    states = [a.state for a in h.fake("alerts").alerts()]
    assert states == ["firing", "resolved"]


def test_line_rules_are_forwarded_by_line_and_evaluated_there() -> None:
    h = harness(LINE_DEFECTS)
    msgs = [result(i, T0 + i * NS, label="crack") for i in range(4)]
    no_line = result(99, T0, label="crack", line=None)
    _feed(h, h.agents.on_result, "edgeloop.results", *msgs, no_line)
    assert h.fake("alerts").sent == []  # line rules do not run on the device-keyed stream
    forwarded = h.fake("by_line").sent
    assert [s.key for s in forwarded] == [b"plant-a/line1"] * 4  # not the result without line
    assert [s.value for s in forwarded] == [encode(m) for m in msgs]

    async def line() -> None:
        for i, s in enumerate(forwarded):
            rec = Record("edgeloop-cloud-results-by-line", 1, i, s.key, s.value)
            await h.agents.on_line_result(rec)

    asyncio.run(line())
    [alert] = h.fake("alerts").alerts()
    assert alert.rule == "defects_line"
    assert alert.scope == "line"
    assert alert.device == "line1"
    assert alert.line == "line1"
    assert list(h.tables.rules) == ["defects_line|plant-a/line1"]


def test_on_line_result_ignores_device_rules() -> None:
    h = harness(DEVICE_DEFECTS)
    _feed(h, h.agents.on_line_result, "by-line", *[result(i, T0, label="dent") for i in range(9)])
    assert h.fake("alerts").sent == []
    assert dict(h.tables.rules) == {}


# --- verdicts, status, telemetry ----------------------------------------------------------------


def test_a_verdict_updates_the_agreement_audit_and_drift_rule() -> None:
    h = harness(DRIFT)
    vs = [
        verdict(1, T0, "ok", "ok"),
        verdict(2, T0 + NS, "ok", "scratch"),
        verdict(3, T0 + 2 * NS, "dent", "crack"),
    ]
    _feed(h, h.agents.on_verdict, "edgeloop.verdicts", *vs)
    key = "agree|plant-a/cam-01/conveyor-int8@1.0.0"
    audit = AgreementAudit.from_state(h.tables.audit[key])
    assert audit.per_class(T0 + 3 * NS) == {"dent": (0, 1), "ok": (1, 2)}
    [alert] = h.fake("alerts").alerts()
    assert alert.rule == "agreement_low"
    assert alert.state == "firing"
    assert alert.value == pytest.approx(1 / 3)


def test_status_and_telemetry_update_the_fleet_and_their_rules() -> None:
    h = harness(HEALTH)
    _feed(h, h.agents.on_status, "edgeloop.status", status(1, T0, "online", software="1.2.3"))
    _feed(
        h,
        h.agents.on_telemetry,
        "edgeloop.telemetry",
        telemetry(2, T0 + NS, {"outbox.depth": 5000.0}),
    )
    row = h.tables.fleet["cam-01"]
    assert row["state"] == "online"
    assert row["software"] == "1.2.3"
    assert row["outbox_depth"] == 5000.0
    assert row["last_seen_ns"] == T0 + NS
    [alert] = h.fake("alerts").alerts()
    assert alert.rule == "outbox_full"
    assert alert.state == "firing"
    assert "offline|plant-a/cam-01" in h.tables.rules  # the offline rule tracks the device


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("on_result", status(1, T0, "online")),
        ("on_status", result(1, T0)),
        ("on_telemetry", result(1, T0)),
        ("on_verdict", result(1, T0)),
    ],
)
def test_a_message_of_the_wrong_type_raises_a_schema_error(handler: str, message: Any) -> None:
    h = harness(HEALTH)
    with pytest.raises(SchemaError) as info:
        _feed(h, getattr(h.agents, handler), "t", message)
    assert info.value.reason == "invalid"
    assert dict(h.tables.fleet) == {}


# --- guarded ------------------------------------------------------------------------------------


def _event(value: bytes | None, offset: int = 7) -> FakeEvent:
    headers = [("mqtt.topic", b"edgeloop/v1/plant-a/cam-01/result")]
    return FakeEvent(FakeMessage("edgeloop.results", 3, offset, b"cam-01", value, headers))


def test_guarded_dead_letters_a_handler_error_and_goes_on() -> None:
    h = harness()

    async def boom(record: Record) -> None:
        raise RuntimeError(f"boom at {record.offset}")

    asyncio.run(h.agents.guarded("on_results", _event(b"payload"), boom))
    [d] = h.fake("dlq").sent
    assert d.key == b"cam-01"
    assert d.value == b"payload"
    headers = dict(d.headers)
    assert headers["dlq.reason"] == b"processing_error"
    assert headers["dlq.detail"] == b"RuntimeError: boom at 7"
    assert headers["dlq.source"] == b"edgeloop.results[3]@7"
    assert headers["dlq.component"] == b"edgeloop-cloud/worker-1/on_results"
    m = h.components.metrics
    assert metric(m, "edgeloop_worker_errors_total", agent="on_results") == 1
    assert (
        metric(m, "edgeloop_worker_dlq_total", agent="on_results", reason="processing_error") == 1
    )
    assert metric(m, "edgeloop_worker_processed_total", agent="on_results") == 0


def test_guarded_skips_undecodable_records_without_a_dead_letter() -> None:
    h = harness()
    asyncio.run(h.agents.guarded("on_results", _event(b"{not json"), h.agents.on_result))
    assert h.fake("dlq").sent == []  # the sink dead-letters it, once
    m = h.components.metrics
    assert metric(m, "edgeloop_worker_processed_total", agent="on_results-skipped") == 1
    assert metric(m, "edgeloop_worker_errors_total", agent="on_results") == 0


def test_an_agent_keeps_going_after_a_bad_record() -> None:
    h = harness()
    run = h.agents.per_event("on_results", h.agents.on_result)
    events = [
        _event(b"{not json", 1),
        _event(None, 2),
        _event(encode(result(3, T0)), 3),
        _event(encode(result(4, T0 + NS)), 4),
    ]
    asyncio.run(run(FakeStream(events)))
    assert h.tables.fleet["cam-01"]["results"] == 2
    m = h.components.metrics
    assert metric(m, "edgeloop_worker_processed_total", agent="on_results") == 2
    assert metric(m, "edgeloop_worker_processed_total", agent="on_results-skipped") == 2
    assert run.__name__ == "on_results"


def test_a_handler_error_mid_stream_is_dead_lettered_once() -> None:
    h = harness()
    seen: list[int] = []

    async def handler(record: Record) -> None:
        seen.append(record.offset)
        if record.offset == 2:
            raise ValueError("bad state")

    run = h.agents.per_event("on_status", handler)
    asyncio.run(run(FakeStream([_event(b"a", 1), _event(b"b", 2), _event(b"c", 3)])))
    assert seen == [1, 2, 3]
    assert [s.value for s in h.fake("dlq").sent] == [b"b"]
