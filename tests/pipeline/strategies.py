"""Hypothesis strategies that build valid messages of every type."""

from __future__ import annotations

from hypothesis import strategies as st

from pipeline.schemas import (
    AlertV1,
    AnomalySummary,
    FrameMetaV1,
    ModelRef,
    OtaOfferV1,
    OtaReportV1,
    ResultV1,
    StatusV1,
    TelemetryV1,
    VerdictV1,
)
from pipeline.schemas.base import MAX_INT64

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
labels = ids
msg_ids = st.from_regex(r"\A[A-Za-z0-9_-]{8,40}\Z")
hexes = st.from_regex(r"\A[0-9a-f]{64}\Z")
probs = st.floats(0, 1, allow_nan=False)
small_floats = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
text = st.text(max_size=60)
metric_names = st.from_regex(r"\A[a-z][a-z0-9_.]{0,30}\Z")

models = st.builds(
    ModelRef,
    name=ids,
    version=st.from_regex(r"\A\d{1,3}\.\d{1,3}\.\d{1,3}\Z"),
    sha256=hexes,
)


def envelope() -> dict[str, st.SearchStrategy]:
    return {
        "id": msg_ids,
        "site": ids,
        "device": ids,
        "seq": st.integers(0, MAX_INT64),
        "ts": st.integers(0, MAX_INT64),
    }


results = st.one_of(
    st.builds(
        ResultV1,
        **envelope(),
        model=models,
        task=st.just("classify"),
        source=ids,
        line=st.none() | ids,
        label=labels,
        score=probs,
        margin=st.none() | probs,
        entropy=st.none() | st.floats(0, 5),
        probs=st.none() | st.dictionaries(labels, probs, max_size=5),
        route=st.sampled_from(["confident", "uncertain", "audit"]),
        frame_id=st.none() | msg_ids,
        action=st.none() | ids,
        latency_ms=st.floats(0, 1e4),
    ),
    st.builds(
        ResultV1,
        **envelope(),
        model=models,
        task=st.just("anomaly"),
        source=ids,
        label=labels,
        score=st.floats(0, 1e6),
        route=st.sampled_from(["normal", "anomalous"]),
        latency_ms=st.floats(0, 1e4),
        anomaly=st.builds(
            AnomalySummary,
            window_s=st.floats(0.01, 3600),
            threshold=st.floats(0, 1e6),
            features=st.dictionaries(ids, small_floats, max_size=5),
        ),
    ),
)
frames = st.builds(
    FrameMetaV1,
    **envelope(),
    model=models,
    source=ids,
    line=st.none() | ids,
    result_id=msg_ids,
    reason=st.sampled_from(["uncertain", "audit"]),
    label=labels,
    score=probs,
    width=st.integers(1, 16384),
    height=st.integers(1, 16384),
    size=st.integers(1, 4 * 1024 * 1024),
    phash=st.from_regex(r"\A[0-9a-f]{16}\Z"),
)
telemetry = st.builds(
    TelemetryV1,
    **envelope(),
    interval_s=st.floats(0.001, 86_400),
    uptime_s=st.floats(0, 1e8),
    counters=st.dictionaries(metric_names, st.integers(0, MAX_INT64), max_size=5),
    gauges=st.dictionaries(metric_names, small_floats, max_size=5),
)
statuses = st.builds(
    StatusV1,
    **envelope(),
    state=st.sampled_from(["online", "offline", "degraded"]),
    reason=st.none() | text,
    software=st.text(max_size=20),
    models=st.lists(models, max_size=3),
    sources=st.dictionaries(ids, st.sampled_from(["ok", "lost", "error"]), max_size=4),
)
verdicts = st.builds(
    VerdictV1,
    **envelope(),
    frame_id=msg_ids,
    result_id=msg_ids,
    source=ids,
    reason=st.sampled_from(["uncertain", "audit"]),
    edge_model=models,
    edge_label=labels,
    edge_score=probs,
    teacher_model=models,
    teacher_label=labels,
    teacher_score=probs,
    teacher_probs=st.dictionaries(labels, probs, max_size=5),
    agree=st.booleans(),
    latency_ms=st.floats(0, 1e4),
)
alerts = st.builds(
    AlertV1,
    **envelope(),
    rule=ids,
    severity=st.sampled_from(["info", "warning", "critical"]),
    state=st.sampled_from(["firing", "resolved"]),
    scope=st.sampled_from(["device", "line", "site"]),
    summary=text,
    value=st.none() | small_floats,
    threshold=st.none() | small_floats,
    labels=st.dictionaries(ids, ids, max_size=3),
)
offers = st.builds(
    OtaOfferV1,
    **envelope(),
    rollout=ids,
    stage=ids,
    model=models,
    url=st.just("file:///var/lib/edgeloop/packages/m.tar"),
    manifest_sha256=hexes,
    signature=st.from_regex(r"\A[A-Za-z0-9+/]{86}==\Z"),
    canary_s=st.floats(0, 3600),
)
reports = st.builds(
    OtaReportV1,
    **envelope(),
    rollout=ids,
    model=models,
    previous=st.none() | models,
    state=st.sampled_from(
        ["received", "verified", "rejected", "canary", "active", "rolled_back", "failed"]
    ),
    reason=st.none() | text,
    metrics=st.dictionaries(ids, small_floats, max_size=3),
)

messages = st.one_of(results, frames, telemetry, statuses, verdicts, alerts, offers, reports)
