"""The sink's batches and its commit rule, with a fake consumer and writer."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import aiokafka
import pytest
from aiokafka.structs import TopicPartition

from cloud_stream.sink.writer import WriteOutcome
from cloud_stream.worker.config import CloudConfig
from cloud_stream.worker.metrics import WorkerMetrics
from cloud_stream.worker.records import Record
from cloud_stream.worker.sink_service import SinkStream, _Batch
from pipeline.schemas import FrameMetaV1, ModelRef, OtaReportV1, encode
from tests.cloud_stream.alerts.messages import NS, T0, result, status, telemetry
from tests.cloud_stream.worker.fakes import metric

TP0 = TopicPartition("edgeloop.results", 0)
TP1 = TopicPartition("edgeloop.status", 1)


@dataclass
class ConsumerRecord:
    """The fields of an aiokafka ConsumerRecord the sink reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _cr(tp: TopicPartition, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, b"cam-01", value)


@dataclass
class Dead:
    """Records the dead letters the sink asks for."""

    calls: list[tuple[Record, str, str]] = field(default_factory=list)

    async def __call__(self, record: Record, reason: str, detail: str) -> None:
        self.calls.append((record, reason, detail))


class Consumer:
    """The consumer calls ``_finish_pending`` makes; every commit is recorded."""

    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(dict(offsets))


class Writer:
    """An InfluxDB writer whose write waits until released, then answers ``outcome``."""

    def __init__(self, outcome: WriteOutcome | Exception | None = None, *, block: bool = False):
        self.outcome = outcome
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.closed = False

    def write(self, lines: list[str]) -> WriteOutcome:
        self.calls.append(list(lines))
        self.started.set()
        assert self.release.wait(10), "the test never released the write"
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome or WriteOutcome(written=len(lines))

    def close(self) -> None:
        self.closed = True


def _stream(writer: Writer | None = None, dead: Dead | None = None) -> tuple[SinkStream, Dead]:
    d = dead or Dead()
    s = SinkStream(
        "bulk",
        ["edgeloop.results", "edgeloop.status"],
        "edgeloop-cloud-sink",
        CloudConfig(),
        writer or Writer(),  # type: ignore[arg-type]
        d,
        WorkerMetrics(),
        flush_s=0.05,
    )
    return s, d


def _add_all(s: SinkStream, batch: _Batch, records: list[tuple[TopicPartition, Any]]) -> None:
    async def go() -> None:
        for tp, r in records:
            await s._add(batch, tp, r)

    asyncio.run(go())


# --- building batches ---------------------------------------------------------------------------


def test_valid_messages_become_lines_with_their_records() -> None:
    s, dead = _stream()
    batch = _Batch()
    _add_all(
        s,
        batch,
        [
            (TP0, _cr(TP0, 10, encode(result(1, T0)))),
            (TP1, _cr(TP1, 4, encode(status(2, T0, "online")))),
            (TP0, _cr(TP0, 11, encode(result(3, T0 + NS)))),
        ],
    )
    assert dead.calls == []
    assert [line.split(",", 1)[0] for line in batch.lines] == ["result", "status", "result"]
    assert batch.lines[0].endswith(f" {T0}")
    assert [r.offset for r in batch.origin] == [10, 4, 11]
    assert batch.offsets == {TP0: 12, TP1: 5}
    assert batch.records == 3


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not_json"),
        (None, "not_json"),
        (b'{"type": "result", "v": 7}', "unknown_type"),
        (b'{"type": "result", "v": 1}', "invalid"),
    ],
)
def test_undecodable_records_are_dead_lettered_and_still_committed(
    value: bytes | None, reason: str
) -> None:
    s, dead = _stream()
    batch = _Batch()
    _add_all(s, batch, [(TP0, _cr(TP0, 20, value)), (TP0, _cr(TP0, 21, encode(result(1, T0))))])
    [(record, got, detail)] = dead.calls
    assert got == reason
    assert record.offset == 20
    assert record.topic == "edgeloop.results"
    assert f"[{reason}]" in detail
    assert len(batch.lines) == 1
    assert batch.origin[0].offset == 21
    assert batch.offsets == {TP0: 22}  # the dead letter is sent before the commit
    assert batch.records == 2
    assert (
        metric(s._metrics, "edgeloop_worker_sink_rejected_total", stream="bulk", reason=reason) == 1
    )


def _ota_report() -> OtaReportV1:
    return OtaReportV1(
        id="o0000000001",
        site="plant-a",
        device="cam-01",
        seq=1,
        ts=T0,
        rollout="r1",
        model=ModelRef(name="conveyor-int8", version="1.1.0", sha256="ab" * 32),
        state="active",
    )


def _frame_meta() -> FrameMetaV1:
    return FrameMetaV1(
        id="f0000000001",
        site="plant-a",
        device="cam-01",
        seq=1,
        ts=T0,
        model=ModelRef(name="conveyor-int8", version="1.1.0", sha256="ab" * 32),
        source="cam0",
        result_id="r0000000001",
        reason="audit",
        label="ok",
        score=0.9,
        width=8,
        height=8,
        size=100,
        phash="0123456789abcdef",
    )


@pytest.mark.parametrize("message", [_ota_report(), _frame_meta()], ids=["ota_report", "frame"])
def test_a_message_type_without_points_is_a_processing_error(message: Any) -> None:
    s, dead = _stream()
    batch = _Batch()
    _add_all(s, batch, [(TP0, _cr(TP0, 3, encode(message)))])
    [(record, reason, detail)] = dead.calls
    assert reason == "processing_error"
    assert record.offset == 3
    assert detail.startswith("cannot store: no InfluxDB points for")
    assert type(message).__name__ in detail
    assert batch.lines == []
    assert batch.offsets == {TP0: 4}


# --- writing and committing ---------------------------------------------------------------------


def _batch_of(s: SinkStream, n: int = 3) -> _Batch:
    batch = _Batch()
    msgs = [(TP0, _cr(TP0, 100 + i, encode(result(i, T0 + i * NS)))) for i in range(n)]
    msgs.append((TP1, _cr(TP1, 7, encode(telemetry(9, T0, {"outbox.depth": 1.0})))))
    _add_all(s, batch, msgs)
    return batch


def test_offsets_are_committed_only_after_the_write_returned() -> None:
    writer = Writer(block=True)
    s, dead = _stream(writer)
    consumer = Consumer()
    s._consumer = consumer
    batch = _batch_of(s)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        s._start_write(batch)
        finishing = asyncio.create_task(s._finish_pending())
        await loop.run_in_executor(None, writer.started.wait, 10)
        await asyncio.sleep(0.05)  # give a wrong implementation the chance to commit early
        assert consumer.commits == []
        assert not finishing.done()
        writer.release.set()
        await finishing

    asyncio.run(go())
    assert writer.calls == [batch.lines]
    assert consumer.commits == [{TP0: 103, TP1: 8}]
    assert dead.calls == []
    m = s._metrics
    assert metric(m, "edgeloop_worker_sink_points_total", stream="bulk") == 4
    assert metric(m, "edgeloop_worker_sink_records_total", stream="bulk") == 4
    assert not s._pending


def test_rejected_lines_are_dead_lettered_with_their_record_then_committed() -> None:
    s, dead = _stream()
    consumer = Consumer()
    s._consumer = consumer
    batch = _batch_of(s)
    bad = batch.lines[1]
    s._writer = Writer(WriteOutcome(written=3, rejected=[(bad, "field type conflict")]))  # type: ignore[assignment]

    async def go() -> None:
        s._start_write(batch)
        await s._finish_pending()

    asyncio.run(go())
    [(record, reason, detail)] = dead.calls
    assert record.offset == 101
    assert record.topic == "edgeloop.results"
    assert reason == "invalid"
    assert "field type conflict" in detail
    assert consumer.commits == [{TP0: 103, TP1: 8}]
    m = s._metrics
    assert metric(m, "edgeloop_worker_sink_points_total", stream="bulk") == 3
    assert metric(m, "edgeloop_worker_sink_rejected_total", stream="bulk", reason="invalid") == 1


def test_nothing_is_committed_when_the_write_raises() -> None:
    writer = Writer(RuntimeError("InfluxDB refused the token"))
    s, dead = _stream(writer)
    consumer = Consumer()
    s._consumer = consumer
    batch = _batch_of(s)

    async def go() -> None:
        s._start_write(batch)
        with pytest.raises(RuntimeError, match="refused the token"):
            await s._finish_pending()

    asyncio.run(go())
    assert consumer.commits == []
    assert dead.calls == []
    assert not s._pending
    assert metric(s._metrics, "edgeloop_worker_sink_records_total", stream="bulk") == 0


def test_a_stop_does_not_commit_a_write_that_outlives_the_grace() -> None:
    writer = Writer(block=True)
    s, _ = _stream(writer)
    consumer = Consumer()
    s._consumer = consumer
    batch = _batch_of(s)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        s._start_write(batch)
        await loop.run_in_executor(None, writer.started.wait, 10)
        with pytest.raises(TimeoutError):
            await s._finish_pending(grace=0.05)
        writer.release.set()  # let the thread end

    asyncio.run(go())
    assert consumer.commits == []
    assert writer.closed
    assert not s._pending


def test_finish_without_a_write_in_flight_does_nothing() -> None:
    s, _ = _stream()
    consumer = Consumer()
    s._consumer = consumer
    asyncio.run(s._finish_pending())
    assert consumer.commits == []


# --- the whole loop, over a fake aiokafka consumer ------------------------------------------------


class FakeAIOKafkaConsumer:
    """Serves fixed batches through ``getmany``, then nothing; records commits."""

    instances: list[FakeAIOKafkaConsumer] = []
    preset: list[dict[TopicPartition, list[ConsumerRecord]]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.batches = list(self.preset)
        self.commits: list[dict[Any, int]] = []
        self.committed = asyncio.Event()
        self.subscribed: list[str] = []
        self.started = self.stopped = False
        FakeAIOKafkaConsumer.instances.append(self)

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.subscribed = list(topics)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(min(timeout_ms, 20) / 1000)
        return {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(dict(offsets))
        self.committed.set()


def _merged(commits: list[dict[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for c in commits:
        out.update(c)
    return out


def test_run_writes_batches_and_commits_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", FakeAIOKafkaConsumer)
    FakeAIOKafkaConsumer.instances = []
    writer = Writer()
    s, dead = _stream(writer)
    first = {TP0: [_cr(TP0, i, encode(result(i, T0 + i * NS))) for i in range(3)]}
    second = {TP1: [_cr(TP1, 0, b"garbage"), _cr(TP1, 1, encode(status(1, T0, "online")))]}

    monkeypatch.setattr(FakeAIOKafkaConsumer, "preset", [first, second])
    expected = {TP0: 3, TP1: 2}

    async def go() -> FakeAIOKafkaConsumer:
        task = asyncio.create_task(s.run())
        await asyncio.sleep(0)  # run() makes its consumer before its first await
        [consumer] = FakeAIOKafkaConsumer.instances
        while _merged(consumer.commits) != expected:
            consumer.committed.clear()
            await asyncio.wait_for(consumer.committed.wait(), 5)
        await s.stop()
        await asyncio.wait_for(task, 5)
        return consumer

    consumer = asyncio.run(go())
    assert consumer.started
    assert consumer.stopped
    assert consumer.subscribed == ["edgeloop.results", "edgeloop.status"]
    assert consumer.options["group_id"] == "edgeloop-cloud-sink"
    assert consumer.options["enable_auto_commit"] is False
    written = [line for call in writer.calls for line in call]
    assert [line.split(",", 1)[0] for line in written] == ["result"] * 3 + ["status"]
    assert [(r.offset, reason) for r, reason, _ in dead.calls] == [(0, "not_json")]
