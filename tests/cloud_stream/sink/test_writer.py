"""InfluxWriter without a network: a scripted InfluxDB answers each request."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from cloud_stream.sink.config import SinkConfig
from cloud_stream.sink.errors import SinkAccessError, SinkClosed, SinkError
from cloud_stream.sink.writer import InfluxWriter, WriteOutcome
from pipeline.config.base import InfluxConfig

Answer = tuple[int, bytes, float]


def _json(message: str) -> bytes:
    return json.dumps({"code": "invalid", "message": message}).encode()


class FakeInflux:
    """Stands in for ``InfluxWriter._post``: decodes each body, answers with ``respond``."""

    def __init__(self, respond: Callable[[list[str]], Answer | BaseException]):
        self.respond = respond
        self.requests: list[list[str]] = []
        self.stored: set[str] = set()

    def __call__(self, body: bytes) -> Answer:
        lines = gzip.decompress(body).decode().split("\n")
        self.requests.append(lines)
        answer = self.respond(lines)
        if isinstance(answer, BaseException):
            raise answer
        if answer[0] == 204:
            self.stored.update(lines)
        return answer


def make_writer(fake: FakeInflux, **sink: object) -> InfluxWriter:
    settings: dict[str, object] = {"retry_initial_s": 0.001, "retry_max_s": 0.005}
    settings.update(sink)
    writer = InfluxWriter(
        InfluxConfig(token="t0ken", bucket="plant", org="acme"),
        SinkConfig.model_validate(settings),
        registry=CollectorRegistry(),
    )
    writer._post = fake  # type: ignore[method-assign]
    return writer


def ok(_lines: list[str]) -> Answer:
    return 204, b"", 0.0


def lines_n(n: int) -> list[str]:
    return [f"m,t=a v={i}i {i}" for i in range(n)]


def test_writes_in_batches_and_counts_metrics():
    fake = FakeInflux(ok)
    writer = make_writer(fake, batch_points=3)
    outcome = writer.write(lines_n(7))
    assert outcome == WriteOutcome(written=7, rejected=[], retries=0)
    assert [len(r) for r in fake.requests] == [3, 3, 1]
    assert fake.stored == set(lines_n(7))
    assert metric(writer, "edgeloop_sink_points_written_total") == 7
    assert metric(writer, "edgeloop_sink_batches_total") == 3
    assert metric(writer, "edgeloop_sink_batch_points_count") == 3
    assert metric(writer, "edgeloop_sink_write_latency_seconds_count") == 3


def metric(writer: InfluxWriter, name: str) -> float:
    value = writer.metrics.registry.get_sample_value(name, {"bucket": writer.bucket})
    return 0.0 if value is None else value


def test_empty_write_sends_nothing():
    fake = FakeInflux(ok)
    assert make_writer(fake).write([]) == WriteOutcome(written=0)
    assert fake.requests == []


def test_uncompressed_body_when_gzip_is_off():
    bodies: list[bytes] = []
    writer = make_writer(FakeInflux(ok), gzip=False)

    def post(body: bytes) -> Answer:
        bodies.append(body)
        return 204, b"", 0.0

    writer._post = post  # type: ignore[method-assign]
    writer.write(["a f=1", "b f=2"])
    assert bodies == [b"a f=1\nb f=2"]
    assert "Content-Encoding" not in writer._headers


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "reset"),
        TimeoutError("timed out"),
        http.client.RemoteDisconnected("closed"),
        (503, _json("service unavailable"), 0.0),
        (500, b"oops", 0.0),
        (429, _json("too many requests"), 0.0),
    ],
)
def test_transient_failures_are_retried_until_success(failure, caplog):
    failures = [failure, failure, failure]

    def respond(_lines: list[str]) -> Answer | BaseException:
        return failures.pop() if failures else (204, b"", 0.0)

    fake = FakeInflux(respond)
    writer = make_writer(fake)
    with caplog.at_level(logging.WARNING, logger="cloud_stream.sink.writer"):
        outcome = writer.write(lines_n(5))
    assert outcome.written == 5
    assert outcome.retries == 3
    assert len(fake.requests) == 4
    assert metric(writer, "edgeloop_sink_retries_total") == 3
    assert metric(writer, "edgeloop_sink_failing") == 0
    # one warning when the outage starts, one when it ends; not one per retry
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "retrying" in messages[0]
    assert "succeed again" in messages[1]


def test_a_long_outage_warns_once_and_close_ends_it(caplog):
    writer = make_writer(FakeInflux(ok))

    def respond(_lines: list[str]) -> Answer | BaseException:
        if len(fake.requests) == 20:
            writer.close()  # what a worker's shutdown does from another thread
        return ConnectionRefusedError(111, "Connection refused")

    fake = FakeInflux(respond)
    writer._post = fake  # type: ignore[method-assign]
    with (
        caplog.at_level(logging.WARNING, logger="cloud_stream.sink.writer"),
        pytest.raises(SinkClosed),
    ):
        writer.write(lines_n(2))
    assert len(fake.requests) == 20
    assert len(caplog.records) == 1
    assert "Connection refused" in caplog.records[0].getMessage()
    assert metric(writer, "edgeloop_sink_failing") == 1
    assert metric(writer, "edgeloop_sink_retries_total") == 19
    assert metric(writer, "edgeloop_sink_points_written_total") == 0


def test_retry_after_is_honoured_up_to_the_cap():
    writer = make_writer(FakeInflux(ok), retry_initial_s=0.01, retry_max_s=0.1)
    assert writer._backoff(0, retry_after=0.05) >= 0.05
    assert writer._backoff(0, retry_after=100) == 0.1
    for attempt in range(12):
        delay = writer._backoff(attempt, retry_after=0)
        ceiling = min(0.1, 0.01 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_close_stops_a_write_that_is_waiting_and_later_writes():
    writer = make_writer(FakeInflux(lambda _l: (503, b"", 0.0)), retry_initial_s=30, retry_max_s=30)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            writer.write(lines_n(3))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while metric(writer, "edgeloop_sink_retries_total") < 1 and time.monotonic() < deadline:
        thread.join(0.01)  # the writer is now waiting 15-30 s before its next try
    writer.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], SinkClosed)
    with pytest.raises(SinkClosed):
        writer.write(["m f=1 1"])


def test_unparsable_lines_named_by_influx_are_rejected_without_bisection():
    good = lines_n(100)
    bad = ["m,t=a f= 5", "garbage here"]
    batch = [*good[:40], bad[0], *good[40:], bad[1]]

    def respond(lines: list[str]) -> Answer:
        wrong = [line for line in lines if line in bad]
        if wrong:
            message = "\n".join(f"unable to parse '{w}': missing field value" for w in wrong)
            return 400, _json(message), 0.0
        return 204, b"", 0.0

    fake = FakeInflux(respond)
    writer = make_writer(fake)
    outcome = writer.write(batch)
    assert outcome.written == 100
    assert outcome.rejected == [
        (bad[0], f"unable to parse '{bad[0]}': missing field value"),
        (bad[1], f"unable to parse '{bad[1]}': missing field value"),
    ]
    assert len(fake.requests) == 2  # the whole batch, then the good lines
    assert fake.stored == set(good)
    assert metric(writer, "edgeloop_sink_rejected_points_total") == 2


@pytest.mark.parametrize("status", [400, 422])
def test_unnamed_bad_lines_are_isolated_by_bisection(status):
    good = lines_n(1000)
    batch = [*good[:10], "BAD one", *good[10:700], "BAD two", *good[700:]]

    def respond(lines: list[str]) -> Answer:
        if any(line.startswith("BAD") for line in lines):
            return status, _json("partial write: field type conflict dropped=1"), 0.0
        return 204, b"", 0.0

    fake = FakeInflux(respond)
    outcome = make_writer(fake).write(batch)
    assert outcome.written == 1000
    assert sorted(line for line, _ in outcome.rejected) == ["BAD one", "BAD two"]
    assert all("field type conflict" in why for _, why in outcome.rejected)
    assert fake.stored == set(good)
    assert len(fake.requests) < 60  # bisection, not one request per line


def test_too_large_requests_are_split():
    def respond(lines: list[str]) -> Answer:
        return (413, _json("request too large"), 0.0) if len(lines) > 300 else (204, b"", 0.0)

    fake = FakeInflux(respond)
    outcome = make_writer(fake).write(lines_n(1000))
    assert outcome.written == 1000
    assert outcome.rejected == []
    assert fake.stored == set(lines_n(1000))


def test_a_single_line_too_large_is_rejected():
    fake = FakeInflux(lambda lines: (413, b"too large", 0.0))
    outcome = make_writer(fake).write(["huge f=1 1"])
    assert outcome.written == 0
    assert outcome.rejected == [("huge f=1 1", "too large")]


@pytest.mark.parametrize(
    ("status", "needle"),
    [(401, "influx.token"), (403, "write permission"), (404, "influx bucket create")],
)
def test_access_errors_raise_at_once_naming_bucket_and_org(status, needle):
    fake = FakeInflux(lambda _l: (status, _json("unauthorized access"), 0.0))
    writer = make_writer(fake)
    with pytest.raises(SinkAccessError) as info:
        writer.write(lines_n(3))
    assert info.value.status == status
    text = str(info.value)
    assert "'plant'" in text
    assert "'acme'" in text
    assert needle in text
    assert len(fake.requests) == 1  # no retry


def test_unexpected_status_is_an_error_not_a_retry():
    fake = FakeInflux(lambda _l: (418, b"teapot", 0.0))
    with pytest.raises(SinkError, match="418"):
        make_writer(fake).write(lines_n(1))
    assert len(fake.requests) == 1


def test_bucket_choice_and_write_path():
    influx = InfluxConfig(url="http://influx.example:9999/base/", token="x", bucket="b1")
    assert InfluxWriter(influx, SinkConfig()).bucket == "b1"
    assert InfluxWriter(influx, SinkConfig(bucket="b2")).bucket == "b2"
    writer = InfluxWriter(influx, SinkConfig(bucket="b2"), bucket="b3")
    assert writer.bucket == "b3"
    assert writer._path == "/base/api/v2/write?org=edgeloop&bucket=b3&precision=ns"
    assert (writer._host, writer._port) == ("influx.example", 9999)
    assert writer._headers["Authorization"] == "Token x"
    assert writer._headers["Content-Encoding"] == "gzip"


def test_writers_sharing_a_registry_share_its_metrics():
    registry = CollectorRegistry()
    one = InfluxWriter(InfluxConfig(token="x"), SinkConfig(), bucket="a", registry=registry)
    two = InfluxWriter(InfluxConfig(token="x"), SinkConfig(), bucket="b", registry=registry)
    one._post = FakeInflux(ok)  # type: ignore[method-assign]
    two._post = FakeInflux(ok)  # type: ignore[method-assign]
    one.write(lines_n(2))
    two.write(lines_n(5))
    assert metric(one, "edgeloop_sink_points_written_total") == 2
    assert metric(two, "edgeloop_sink_points_written_total") == 5


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        ((204, b"", 0.0), True),
        (ConnectionRefusedError(111, "refused"), False),
        ((503, b"", 0.0), False),
    ],
)
def test_check_sends_an_empty_write(answer, result):
    bodies: list[bytes] = []
    writer = make_writer(FakeInflux(ok))

    def post(body: bytes) -> Answer:
        bodies.append(body)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    writer._post = post  # type: ignore[method-assign]
    assert writer.check() is result
    assert [gzip.decompress(body) for body in bodies] == [b""]


def test_check_raises_on_a_bad_token():
    writer = make_writer(FakeInflux(ok))
    writer._post = lambda _body: (401, _json("unauthorized access"), 0.0)  # type: ignore[method-assign]
    with pytest.raises(SinkAccessError, match=r"influx\.token"):
        writer.check()
