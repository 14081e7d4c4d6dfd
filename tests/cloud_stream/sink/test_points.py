"""Messages -> line protocol: the data model of docs/influxdb.md, escaping, types."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_stream.sink.points import drift_line, fleet_line, lines_for
from pipeline.schemas import (
    AlertV1,
    AnomalySummary,
    FrameMetaV1,
    ModelRef,
    ResultV1,
    StatusV1,
    TelemetryV1,
    VerdictV1,
    decode,
    encode,
)
from tests.cloud_stream.sink.lineproto import parse_line
from tests.pipeline.strategies import alerts, results, statuses, telemetry, verdicts

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = 1_790_000_000_123_456_789
EDGE = ModelRef(name="conveyor-int8", version="1.2.0", sha256="ab" * 32)
TEACHER = ModelRef(name="conveyor-fp32", version="2.0.0-rc.1", sha256="cd" * 32)
ID = "0123456789abcdef0123456789abcdef"
ID2 = "fedcba9876543210fedcba9876543210"


def envelope(**extra: Any) -> dict[str, Any]:
    return {"id": ID, "site": "plant-a", "device": "cam-01", "seq": 42, "ts": TS, **extra}


def one(message: Any) -> str:
    lines = lines_for(message)
    assert len(lines) == 1
    return lines[0]


# --- the expected point of each message, written from the table in docs/influxdb.md ----
def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def expected(m: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    if isinstance(m, ResultV1):
        tags = {
            "site": m.site,
            "line": m.line,
            "device": m.device,
            "source": m.source,
            "model": m.model.name,
            "model_version": m.model.version,
            "task": m.task,
            "label": m.label,
            "route": m.route,
        }
        fields: dict[str, Any] = {
            "score": m.score,
            "margin": m.margin,
            "entropy": m.entropy,
            "latency_ms": m.latency_ms,
            "seq": m.seq,
            "id": m.id,
            "frame_id": m.frame_id,
            "action": m.action,
        }
        if m.anomaly is not None:
            fields["threshold"] = m.anomaly.threshold
            fields.update({f"feature_{k}": v for k, v in m.anomaly.features.items()})
        return "result", _drop_none(tags), _drop_none(fields)
    if isinstance(m, TelemetryV1):
        fields = {"uptime_s": m.uptime_s, "interval_s": m.interval_s}
        fields.update({"c_" + k.replace(".", "_"): v for k, v in m.counters.items()})
        fields.update({"g_" + k.replace(".", "_"): v for k, v in m.gauges.items()})
        return "telemetry", {"site": m.site, "device": m.device}, fields
    if isinstance(m, StatusV1):
        fields = {
            "reason": m.reason,
            "software": m.software,
            "models": ",".join(f"{r.name}@{r.version}" for r in m.models),
            "sources_lost": sum(1 for s in m.sources.values() if s == "lost"),
            "seq": m.seq,
        }
        tags = {"site": m.site, "device": m.device, "state": m.state}
        return "status", tags, _drop_none(fields)
    if isinstance(m, VerdictV1):
        tags = {
            "site": m.site,
            "line": m.line,
            "device": m.device,
            "source": m.source,
            "edge_model": m.edge_model.name,
            "edge_model_version": m.edge_model.version,
            "teacher_model_version": m.teacher_model.version,
            "edge_label": m.edge_label,
            "teacher_label": m.teacher_label,
            "agree": "true" if m.agree else "false",
            "reason": m.reason,
        }
        fields = {
            "edge_score": m.edge_score,
            "teacher_score": m.teacher_score,
            "latency_ms": m.latency_ms,
            "id": m.id,
            "frame_id": m.frame_id,
            "result_id": m.result_id,
        }
        return "verdict", _drop_none(tags), fields
    assert isinstance(m, AlertV1)
    tags = {
        "site": m.site,
        "line": m.line,
        "subject": m.device,
        "rule": m.rule,
        "severity": m.severity,
        "state": m.state,
        "scope": m.scope,
    }
    fields = {
        "summary": m.summary,
        "value": m.value,
        "threshold": m.threshold,
        "id": m.id,
        "seq": m.seq,
    }
    fields.update({f"label_{k}": v for k, v in m.labels.items()})
    return "alert", _drop_none(tags), _drop_none(fields)


def _check(message: Any) -> None:
    line = one(message)
    point = parse_line(line)
    measurement, tags, fields = expected(message)
    assert point.measurement == measurement
    assert point.tags == tags
    assert point.tag_order == sorted(point.tags)
    assert point.ts == message.ts
    assert point.fields.keys() == fields.keys()
    for key, want in fields.items():
        got = point.fields[key]
        # ints stay ints (``i``), floats stay floats, even when integral (1.0)
        assert type(got) is type(want), (key, got, want)
        assert got == want, (key, got, want)


@SETTINGS
@given(st.one_of(results, telemetry, statuses, verdicts, alerts))
def test_every_message_renders_the_documented_point(message):
    _check(message)


@SETTINGS
@given(st.one_of(results, telemetry, statuses, verdicts, alerts))
def test_rendering_is_deterministic_across_a_round_trip(message):
    # A replayed record is decoded afresh: it must give byte-identical lines.
    assert lines_for(decode(encode(message))) == lines_for(message)


# --- examples ------------------------------------------------------------------------
def test_classify_result_exact_line():
    m = ResultV1(
        **envelope(),
        model=EDGE,
        task="classify",
        source="cam0",
        line="line-1",
        label="scratch",
        score=1,  # an int in, a float out: InfluxDB must see 1.0, not an integer
        margin=0.25,
        route="uncertain",
        frame_id=ID2,
        action="reject-gate",
        latency_ms=3.5,
    )
    assert one(m) == (
        "result,device=cam-01,label=scratch,line=line-1,model=conveyor-int8,"
        "model_version=1.2.0,route=uncertain,site=plant-a,source=cam0,task=classify "
        f'id="{ID}",seq=42i,score=1.0,latency_ms=3.5,margin=0.25,frame_id="{ID2}",'
        f'action="reject-gate" {TS}'
    )


def test_absent_tags_and_fields_are_left_out():
    m = ResultV1(
        **envelope(),
        model=EDGE,
        task="classify",
        source="cam0",
        label="ok",
        score=0.9,
        route="confident",
        latency_ms=1.0,
    )
    point = parse_line(one(m))
    assert "line" not in point.tags
    assert set(point.fields) == {"id", "seq", "score", "latency_ms"}
    assert ",line=" not in one(m)


def test_anomaly_result_has_threshold_and_feature_fields():
    m = ResultV1(
        **envelope(device="vib-01"),
        model=EDGE,
        task="anomaly",
        source="spindle",
        label="anomaly",
        score=7.5,
        route="anomalous",
        latency_ms=0.5,
        anomaly=AnomalySummary(
            window_s=1.0, threshold=5, features={"vibration_rms": 2.0, "temp.c": -3.25}
        ),
    )
    point = parse_line(one(m))
    assert point.fields["threshold"] == 5.0
    assert point.fields["feature_vibration_rms"] == 2.0
    assert point.fields["feature_temp.c"] == -3.25
    assert point.tags["task"] == "anomaly"


def test_telemetry_names_and_types():
    m = TelemetryV1(
        **envelope(),
        interval_s=10,
        uptime_s=3600,
        counters={"routes.uncertain": 7, "outbox.evicted": 0},
        gauges={"outbox.depth": 12, "latency.p99_ms": 4.5},
    )
    line = one(m)
    assert "c_routes_uncertain=7i" in line
    assert "c_outbox_evicted=0i" in line
    assert "g_outbox_depth=12.0" in line
    assert "g_latency_p99_ms=4.5" in line
    assert "uptime_s=3600.0" in line
    assert line.startswith("telemetry,device=cam-01,site=plant-a ")


def test_telemetry_names_equal_after_dot_replacement_give_one_field():
    m = TelemetryV1(**envelope(), interval_s=1, uptime_s=1, counters={"a.b": 1, "a_b": 2})
    point = parse_line(one(m))  # the reader refuses a field written twice
    assert point.fields["c_a_b"] in (1, 2)


def test_status_fields():
    m = StatusV1(
        **envelope(),
        state="degraded",
        reason='camera "cam1" lost\\restarting',
        software="0.1.0",
        models=[EDGE, TEACHER],
        sources={"cam0": "ok", "cam1": "lost", "cam2": "lost", "cam3": "error"},
    )
    line = one(m)
    assert 'reason="camera \\"cam1\\" lost\\\\restarting"' in line
    point = parse_line(line)
    assert point.tags == {"device": "cam-01", "site": "plant-a", "state": "degraded"}
    assert point.fields["reason"] == 'camera "cam1" lost\\restarting'
    assert point.fields["models"] == "conveyor-int8@1.2.0,conveyor-fp32@2.0.0-rc.1"
    assert point.fields["sources_lost"] == 2


def test_verdict_tags():
    m = VerdictV1(
        **envelope(),
        frame_id=ID2,
        result_id=ID2,
        source="cam0",
        reason="audit",
        edge_model=EDGE,
        edge_label="ok",
        edge_score=0.7,
        teacher_model=TEACHER,
        teacher_label="dent",
        teacher_score=0.95,
        teacher_probs={"ok": 0.05, "dent": 0.95},
        agree=False,
        latency_ms=12.0,
    )
    point = parse_line(one(m))
    assert point.tags["agree"] == "false"
    assert point.tags["teacher_model_version"] == "2.0.0-rc.1"
    assert "teacher_probs" not in one(m)


def test_alert_subject_and_labels():
    m = AlertV1(
        **envelope(device="line-3"),
        rule="defect_rate_high",
        severity="critical",
        state="firing",
        scope="line",
        line="line-3",
        summary="defect rate 12% > 5% over 5 min",
        value=0.12,
        labels={"window": "5m"},
    )
    point = parse_line(one(m))
    assert point.tags["subject"] == "line-3"
    assert point.tags["scope"] == "line"
    assert point.fields["label_window"] == "5m"
    assert "threshold" not in point.fields


def test_non_finite_floats_are_skipped():
    # Schemas refuse NaN, but a model built without validation must still give a valid line.
    base = ResultV1(
        **envelope(),
        model=EDGE,
        task="classify",
        source="cam0",
        label="ok",
        score=0.5,
        route="confident",
        latency_ms=1.0,
    )
    bad = base.model_copy(update={"score": math.nan, "margin": math.inf, "entropy": -math.inf})
    point = parse_line(one(bad))
    assert "score" not in point.fields
    assert "margin" not in point.fields
    assert "entropy" not in point.fields
    assert point.fields["latency_ms"] == 1.0


def test_other_messages_are_a_type_error():
    frame = FrameMetaV1(
        **envelope(),
        model=EDGE,
        source="cam0",
        result_id=ID2,
        reason="audit",
        label="ok",
        score=0.5,
        width=4,
        height=4,
        size=10,
        phash="0123456789abcdef",
    )
    with pytest.raises(TypeError, match="FrameMetaV1"):
        lines_for(frame)
    with pytest.raises(TypeError):
        lines_for({"type": "result"})


# --- drift and fleet -------------------------------------------------------------------
def test_drift_line():
    line = drift_line(
        site="plant-a",
        device="cam-01",
        model="conveyor-int8",
        model_version="1.2.0",
        cls="_all",
        ts_ns=TS,
        agreement=0.75,
        verdicts=40,
        psi=0.31,
        results=1000,
    )
    assert line == (
        "drift,class=_all,device=cam-01,model=conveyor-int8,model_version=1.2.0,site=plant-a "
        f"agreement=0.75,verdicts=40i,psi=0.31,results=1000i {TS}"
    )


def test_drift_line_omits_none_and_needs_a_field():
    line = drift_line(
        site="s", device="d", model="m", model_version="1.0.0", cls="ok", ts_ns=1, psi=1
    )
    assert line == "drift,class=ok,device=d,model=m,model_version=1.0.0,site=s psi=1.0 1"
    with pytest.raises(ValueError, match="at least one field"):
        drift_line(site="s", device="d", model="m", model_version="1", cls="ok", ts_ns=1)
    with pytest.raises(ValueError, match="at least one field"):
        drift_line(
            site="s", device="d", model="m", model_version="1", cls="ok", ts_ns=1, psi=math.nan
        )


def test_fleet_line():
    line = fleet_line(
        site="plant-a",
        device="cam-01",
        ts_ns=TS,
        state="online",
        model="conveyor-int8@1.2.0",
        software="0.1.0",
        last_seen_ns=TS - 5,
        outbox_depth=3,
        escalation_rate=math.inf,
        results=None,
    )
    point = parse_line(line)
    assert point.measurement == "fleet"
    assert point.tags == {"device": "cam-01", "site": "plant-a"}
    assert point.fields == {
        "state": "online",
        "model": "conveyor-int8@1.2.0",
        "software": "0.1.0",
        "last_seen_ns": TS - 5,
        "outbox_depth": 3.0,
    }
    assert "outbox_depth=3.0" in line


def test_escaping_of_tags_and_strings():
    line = fleet_line(
        site="plant a,b=c",
        device="cam\n01",
        ts_ns=7,
        software='v"1" \\ path, with=signs',
    )
    assert line.startswith("fleet,device=cam\\n01,site=plant\\ a\\,b\\=c software=")
    point = parse_line(line)
    assert point.tags["site"] == "plant a,b=c"
    assert point.fields["software"] == 'v"1" \\ path, with=signs'
    assert "\n" not in line


def test_field_keys_are_escaped():
    m = AlertV1(
        **envelope(),
        rule="r",
        severity="info",
        state="resolved",
        summary="",
        labels={"a": "b"},
    )
    point = parse_line(one(m))
    assert point.fields["summary"] == ""
    assert point.fields["label_a"] == "b"
