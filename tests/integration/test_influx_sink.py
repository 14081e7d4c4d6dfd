"""The InfluxDB sink against the real InfluxDB: exact counts, replays, outages, bad lines."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_stream.sink import (
    InfluxWriter,
    SinkAccessError,
    SinkConfig,
    WriteOutcome,
    count_points,
    drift_line,
    fleet_line,
    lines_for,
    post_lines,
)
from pipeline.config.base import InfluxConfig
from pipeline.schemas import (
    AlertV1,
    ModelRef,
    ResultV1,
    StatusV1,
    TelemetryV1,
    VerdictV1,
    new_id,
)
from pipeline.schemas.base import MAX_INT64
from tests.integration.tcpproxy import TcpProxy
from tests.pipeline.strategies import alerts, results, statuses, telemetry, verdicts

BASE = 1_790_000_000_000_000_000  # 2026-09-21, inside any retention, before "now" of the tests
STEP = 1_000  # ns between points, so every point has its own time
EDGE = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)
TEACHER = ModelRef(name="conveyor-fp32", version="1.0.0", sha256="cd" * 32)
MEASUREMENTS = ("result", "telemetry", "status", "verdict", "alert", "drift", "fleet")


def config(creds: Any, bucket: str, *, token: str | None = None, url: str | None = None):
    return InfluxConfig(
        url=url or creds.url, org=creds.org, bucket=bucket, token=token, timeout_s=5
    )


def counts(client: Any, bucket: str) -> dict[str, int]:
    return {m: count_points(client, bucket, m, 0, stop=BASE + 10**12) for m in MEASUREMENTS}


def mixed_lines(n: int, site: str = "plant-a") -> list[str]:
    """``n`` lines over every measurement, each a distinct point."""
    lines: list[str] = []
    for i in range(n):
        ts = BASE + i * STEP
        env = {"id": new_id(), "site": site, "device": f"cam-{i % 7}", "seq": i, "ts": ts}
        kind = i % 10
        if kind < 4:
            msg: Any = ResultV1(
                **env,
                model=EDGE,
                task="classify",
                source="cam0",
                line="line-1" if i % 2 else None,
                label=("ok", "scratch", "dent")[i % 3],
                score=0.5 + (i % 50) / 100,
                margin=0.1,
                route="confident",
                latency_ms=1.5,
                frame_id=new_id() if i % 5 == 0 else None,
            )
        elif kind == 4:
            msg = TelemetryV1(
                **env,
                interval_s=10,
                uptime_s=float(i),
                counters={"routes.uncertain": i, "outbox.evicted": 0},
                gauges={"outbox.depth": 3, "latency.p99_ms": 4.5},
            )
        elif kind == 5:
            msg = StatusV1(
                **env,
                state="online",
                reason='all "good"',
                software="0.1.0",
                models=[EDGE],
                sources={"cam0": "ok"},
            )
        elif kind == 6:
            msg = VerdictV1(
                **env,
                frame_id=new_id(),
                result_id=new_id(),
                source="cam0",
                reason="audit",
                edge_model=EDGE,
                edge_label="ok",
                edge_score=0.7,
                teacher_model=TEACHER,
                teacher_label="dent",
                teacher_score=0.9,
                teacher_probs={"ok": 0.1, "dent": 0.9},
                agree=False,
                latency_ms=20,
            )
        elif kind == 7:
            msg = AlertV1(
                **env,
                rule="defect_rate_high",
                severity="warning",
                state="firing",
                summary="defect rate 9% > 5%",
                value=0.09,
                threshold=0.05,
                labels={"window": "5m"},
            )
        elif kind == 8:
            lines.append(
                drift_line(
                    site=site,
                    device=env["device"],
                    model=EDGE.name,
                    model_version=EDGE.version,
                    cls="_all",
                    ts_ns=ts,
                    agreement=0.8,
                    verdicts=i,
                )
            )
            continue
        else:
            lines.append(
                fleet_line(site=site, device=env["device"], ts_ns=ts, state="online", results=i)
            )
            continue
        lines.extend(lines_for(msg))
    return lines


def test_exact_count_and_idempotent_replay(influx_credentials, influx_bucket, influx_client):
    lines = mixed_lines(20_000)
    # no token in the config: the devstack's scoped writer token must reach a new bucket
    with InfluxWriter(config(influx_credentials, influx_bucket), SinkConfig()) as writer:
        assert writer.check() is True
        first = writer.write(lines)
        assert first == WriteOutcome(written=20_000, rejected=[], retries=0)
        got = counts(influx_client, influx_bucket)
        assert sum(got.values()) == 20_000
        assert got == {
            "result": 8000,
            "telemetry": 2000,
            "status": 2000,
            "verdict": 2000,
            "alert": 2000,
            "drift": 2000,
            "fleet": 2000,
        }
        # A replay of the same records writes the same points: overwritten, not added.
        again = writer.write(lines)
        assert again.written == 20_000
        assert counts(influx_client, influx_bucket) == got
        assert (
            writer.metrics.registry.get_sample_value(
                "edgeloop_sink_points_written_total", {"bucket": influx_bucket}
            )
            == 40_000
        )


def test_raw_baseline_writes_the_same_points(influx_credentials, influx_bucket, influx_client):
    lines = mixed_lines(3_000)
    seconds = post_lines(
        influx_credentials.url,
        influx_credentials.org,
        influx_bucket,
        influx_credentials.writer_token,
        lines,
        batch=1000,
    )
    assert seconds > 0
    assert sum(counts(influx_client, influx_bucket).values()) == 3_000


def test_outage_retries_until_influx_is_back(influx_credentials, influx_bucket, influx_client):
    target = urlsplit(influx_credentials.url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 8086).start()
    sink = SinkConfig(batch_points=1000, retry_initial_s=0.05, retry_max_s=0.5)
    url = f"http://127.0.0.1:{proxy.port}"
    writer = InfluxWriter(config(influx_credentials, influx_bucket, url=url), sink)
    try:
        lines = mixed_lines(5_500)
        before, outage = lines[:500], lines[500:]
        assert writer.write(before).written == 500  # leaves a kept-alive connection behind
        proxy.cut()
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(writer.write(outage)))
        thread.start()
        deadline = time.monotonic() + 30
        while (
            writer.metrics.registry.get_sample_value(
                "edgeloop_sink_retries_total", {"bucket": influx_bucket}
            )
            or 0
        ) < 3 and time.monotonic() < deadline:
            thread.join(0.05)
        assert thread.is_alive(), "write() returned while InfluxDB was unreachable"
        assert sum(counts(influx_client, influx_bucket).values()) == 500
        proxy.resume()
        thread.join(30)
        assert not thread.is_alive()
        (outcome,) = done
        assert outcome.written == 5_000
        assert outcome.rejected == []
        assert outcome.retries >= 3
        assert sum(counts(influx_client, influx_bucket).values()) == 5_500
        assert (
            writer.metrics.registry.get_sample_value(
                "edgeloop_sink_failing", {"bucket": influx_bucket}
            )
            == 0
        )
    finally:
        writer.close()
        proxy.stop()


def test_close_ends_a_write_stuck_in_an_outage(influx_credentials, influx_bucket):
    target = urlsplit(influx_credentials.url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 8086) as proxy:
        proxy.cut()
        url = f"http://127.0.0.1:{proxy.port}"
        writer = InfluxWriter(config(influx_credentials, influx_bucket, url=url), SinkConfig())
        errors: list[BaseException] = []

        def run() -> None:
            try:
                writer.write(mixed_lines(10))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while (
            not writer.metrics.registry.get_sample_value(
                "edgeloop_sink_retries_total", {"bucket": influx_bucket}
            )
            and time.monotonic() < deadline
        ):
            thread.join(0.05)
        writer.close()
        thread.join(10)
        assert not thread.is_alive()
        assert [type(e).__name__ for e in errors] == ["SinkClosed"]


def test_malformed_lines_are_returned_and_the_rest_written(
    influx_credentials, influx_bucket, influx_client
):
    good = mixed_lines(1_000)
    bad = ["result,device=cam-9 seq= 5", "result,device=cam-9,site=plant-a"]
    batch = [*good[:333], bad[0], *good[333:777], bad[1], *good[777:]]
    with InfluxWriter(config(influx_credentials, influx_bucket), SinkConfig()) as writer:
        outcome = writer.write(batch)
    assert outcome.written == 1_000
    assert [line for line, _ in outcome.rejected] == bad
    for line, error in outcome.rejected:
        assert "unable to parse" in error
        assert line in error
    assert sum(counts(influx_client, influx_bucket).values()) == 1_000


def test_type_conflicts_are_isolated_by_bisection(influx_credentials, influx_bucket, influx_client):
    good = mixed_lines(400)
    conflict = f'result,device=cam-9,site=plant-a id="x",seq="not an int" {BASE - 1}'
    with InfluxWriter(config(influx_credentials, influx_bucket), SinkConfig()) as writer:
        assert writer.write(good[:10]).written == 10  # seq is now an integer field
        outcome = writer.write([*good[10:200], conflict, *good[200:]])
    assert outcome.written == 390
    assert [line for line, _ in outcome.rejected] == [conflict]
    assert "field type conflict" in outcome.rejected[0][1]
    assert sum(counts(influx_client, influx_bucket).values()) == 400


def test_a_time_influx_cannot_store_is_returned_not_lost(influx_credentials, influx_bucket):
    # The schemas allow ts up to 2**63-1; InfluxDB stores up to 2**63-2.
    line = fleet_line(site="s", device="d", ts_ns=MAX_INT64, state="online")
    with InfluxWriter(config(influx_credentials, influx_bucket), SinkConfig()) as writer:
        outcome = writer.write([line, *mixed_lines(5)])
    assert outcome.written == 5
    assert [bad for bad, _ in outcome.rejected] == [line]
    assert "time outside range" in outcome.rejected[0][1]


def test_escaped_tags_and_strings_read_back_as_written(
    influx_credentials, influx_bucket, influx_client
):
    line = fleet_line(
        site="plant a,b=c", device="cam 1", ts_ns=BASE, software='v"1" \\ x, y=z', results=3
    )
    with InfluxWriter(config(influx_credentials, influx_bucket), SinkConfig()) as writer:
        assert writer.write([line]).written == 1
    flux = (
        f'from(bucket: "{influx_bucket}") |> range(start: 0, stop: {BASE + 1})'
        ' |> filter(fn: (r) => r._measurement == "fleet")'
    )
    records = [
        rec.values
        for table in influx_client.query_api().query(flux, org=influx_credentials.org)
        for rec in table.records
    ]
    assert {(r["_field"], r["_value"]) for r in records} == {
        ("software", 'v"1" \\ x, y=z'),
        ("results", 3),
    }
    assert {(r["site"], r["device"]) for r in records} == {("plant a,b=c", "cam 1")}


@pytest.mark.parametrize(
    ("token", "status"), [("not-a-token", 401), ("reader", 403), ("writer", 404)]
)
def test_access_errors_are_clear(influx_credentials, influx_bucket, token, status):
    tokens = {"reader": influx_credentials.reader_token, "writer": influx_credentials.writer_token}
    bucket = f"{influx_bucket}-missing" if status == 404 else influx_bucket
    influx = config(influx_credentials, bucket, token=tokens.get(token, token))
    with InfluxWriter(influx, SinkConfig(retry_initial_s=30)) as writer:
        with pytest.raises(SinkAccessError):
            writer.check()
        started = time.monotonic()
        with pytest.raises(SinkAccessError) as info:
            writer.write(mixed_lines(3))
        assert time.monotonic() - started < 20  # raised, not retried with a 30 s backoff
    assert info.value.status == status
    text = str(info.value)
    assert f"bucket {bucket!r}" in text
    assert f"org {influx_credentials.org!r}" in text
    assert "hint:" in text


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(results, telemetry, statuses, verdicts, alerts).filter(
            lambda m: m.ts < MAX_INT64
        ),
        min_size=1,
        max_size=30,
    )
)
def test_every_generated_message_is_accepted(influx_credentials, influx_bucket, messages):
    lines = [line for message in messages for line in lines_for(message)]
    with InfluxWriter(
        config(influx_credentials, influx_bucket), SinkConfig(batch_points=10)
    ) as writer:
        outcome = writer.write(lines)
    assert outcome.rejected == []
    assert outcome.written == len(messages)


def health(conn: Any) -> int:
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    return int(response.status)


def test_proxy_cut_refuses_and_resume_accepts(influx_credentials):
    import http.client

    target = urlsplit(influx_credentials.url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 8086) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().read()
        assert proxy.live == 2
        proxy.cut()
        with pytest.raises((http.client.HTTPException, OSError)):
            health(conn)
        conn.close()
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5).connect()
        proxy.resume()
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
        assert proxy.accepted == 2
