"""The aiokafka producer path without a broker: batching, grouping, outcomes, wake-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, OutOfOrderSequenceNumber

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.producer import Pending, make_record_producer
from cloud_stream.bridge.producer_aio import AioKafkaProducer
from cloud_stream.bridge.producer_kp import KafkaPythonProducer
from cloud_stream.bridge.translate import KafkaRecord
from cloud_stream.kafka_conn import partition_of


class Handler:
    def __init__(self) -> None:
        self.delivered: list[list[int]] = []
        self.failed: list[tuple[list[int], BaseException]] = []
        self.status: list[BaseException | None] = []

    def on_delivered(self, pendings):
        self.delivered.append([p.mid for p in pendings])

    def on_failed(self, pendings, exc):
        self.failed.append(([p.mid for p in pendings], exc))

    def on_kafka_status(self, error):
        self.status.append(error)


class FakeBatch:
    def __init__(self, room: int):
        self.room = room
        self.records: list[tuple[bytes, bytes]] = []
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def append(self, *, timestamp: Any, key: bytes, value: bytes, headers: Any) -> Any:
        if self.records and len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()


class FakeKafka:
    """What the producer path uses of AIOKafkaProducer."""

    def __init__(self, room: int = 1000, fail_send: BaseException | None = None):
        self.room = room
        self.fail_send = fail_send
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]], asyncio.Future[Any]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert batch.closed, "an open batch waits out linger_ms before it is sent"
        if self.fail_send is not None:
            raise self.fail_send
        future = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, batch.records, future))
        return future


def _pending(mid: int, device: str, topic: str = "t.results") -> Pending:
    record = KafkaRecord(topic, device.encode(), f"{device}:{mid}".encode(), [], device, 0)
    return Pending(1, mid, 1, 0.0, record)


def _producer(handler: Handler) -> AioKafkaProducer:
    config = BridgeConfig.model_validate({"producer": {"client": "aiokafka"}})
    return AioKafkaProducer(config, handler)


def test_the_config_picks_the_client():
    handler = Handler()
    for name, cls in (("aiokafka", AioKafkaProducer), ("kafka-python", KafkaPythonProducer)):
        config = BridgeConfig.model_validate({"producer": {"client": name}})
        assert type(make_record_producer(config, handler)) is cls
    assert BridgeConfig().producer.client == "aiokafka"


def test_one_batch_per_partition_in_arrival_order_and_acks_per_batch():
    handler = Handler()
    producer = _producer(handler)
    fake = FakeKafka()
    producer._producer = fake  # type: ignore[assignment]
    devices = [f"dev-{i:02d}" for i in range(10)]
    items = [_pending(i, devices[i % 10]) for i in range(200)]

    async def go() -> None:
        await producer._produce(items)
        for *_, future in fake.sent:
            future.set_result(None)
        await asyncio.sleep(0)

    asyncio.run(go())
    partitions = {partition_of(d.encode(), 4) for d in devices}
    assert sorted(p for _, p, _, _ in fake.sent) == sorted(partitions)  # one batch each
    for _, partition, records, _ in fake.sent:
        assert {partition_of(k, 4) for k, _ in records} == {partition}
        for device in {k for k, _ in records}:
            seqs = [int(v.split(b":")[1]) for k, v in records if k == device]
            assert seqs == sorted(seqs)  # a device's order is kept
    assert len(handler.delivered) == len(fake.sent)  # one report per batch
    assert sorted(m for batch in handler.delivered for m in batch) == list(range(200))
    assert handler.failed == []


def test_a_full_batch_is_sent_and_the_next_one_started():
    handler = Handler()
    producer = _producer(handler)
    fake = FakeKafka(room=7)
    producer._producer = fake  # type: ignore[assignment]
    items = [_pending(i, "dev-01") for i in range(20)]
    asyncio.run(producer._produce(items))
    assert [len(r) for _, _, r, _ in fake.sent] == [7, 7, 6]
    assert [v for _, _, r, _ in fake.sent for _, v in r] == [
        f"dev-01:{i}".encode() for i in range(20)
    ]


def test_failed_batches_are_reported_and_a_broken_producer_is_replaced():
    handler = Handler()
    producer = _producer(handler)
    fake = FakeKafka()
    producer._producer = fake  # type: ignore[assignment]

    async def go() -> None:
        producer._wake = asyncio.Event()
        await producer._produce([_pending(1, "a"), _pending(2, "a")])
        fake.sent[0][3].set_exception(KafkaTimeoutError())
        await asyncio.sleep(0)
        assert not producer._replace  # Kafka slow or away: aiokafka copes
        await producer._produce([_pending(3, "a")])
        fake.sent[1][3].set_exception(OutOfOrderSequenceNumber())
        await asyncio.sleep(0)

    asyncio.run(go())
    assert [mids for mids, _ in handler.failed] == [[1, 2], [3]]
    assert producer._replace
    assert handler.delivered == []


def test_a_refused_send_fails_its_records_at_once():
    handler = Handler()
    producer = _producer(handler)
    producer._producer = FakeKafka(fail_send=KafkaConnectionError("down"))  # type: ignore[assignment]
    asyncio.run(producer._produce([_pending(1, "a"), _pending(2, "b")]))
    assert sorted(m for mids, _ in handler.failed for m in mids) == [1, 2]
    assert not producer._replace  # retriable


def test_unfinished_batches_of_a_replaced_producer_fail_once():
    handler = Handler()
    producer = _producer(handler)
    fake = FakeKafka()
    producer._producer = fake  # type: ignore[assignment]

    async def go() -> None:
        await producer._produce([_pending(1, "a")])
        producer._fail_outstanding(KafkaConnectionError("replaced"))
        fake.sent[0][3].set_result(None)  # a late answer from the old producer
        await asyncio.sleep(0)

    asyncio.run(go())
    assert [mids for mids, _ in handler.failed] == [[1]]
    assert handler.delivered == []


def test_records_queued_together_wake_the_loop_once(monkeypatch: pytest.MonkeyPatch):
    producer = _producer(Handler())
    producer._wake = asyncio.Event()
    producer._loop = asyncio.new_event_loop()
    calls: list[Any] = []
    monkeypatch.setattr(producer._loop, "call_soon_threadsafe", lambda *a: calls.append(a))
    for i in range(100):
        producer.send(_pending(i, "a"))
    assert len(calls) == 1
    assert [p.mid for p in producer._take()] == list(range(100))
    producer._woken = False  # what the loop does before taking
    producer.send(_pending(100, "a"))
    assert len(calls) == 2
    producer._loop.close()
