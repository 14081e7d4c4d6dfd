"""The bridge's delivery rule, without a broker: what gets a PUBACK, and when."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.producer import Pending
from cloud_stream.bridge.service import Bridge
from cloud_stream.bridge.translate import KafkaRecord
from cloud_stream.kafka_conn import partition_of


@pytest.fixture
def bridge(monkeypatch: pytest.MonkeyPatch) -> Any:
    b = Bridge(BridgeConfig.model_validate({"metrics": {"enabled": False}}))
    b.acked: list[int] = []  # type: ignore[attr-defined]
    monkeypatch.setattr(b._client, "ack_many", b.acked.extend)
    monkeypatch.setattr(b._client, "ack", lambda mid, qos: b.acked.append(mid))
    b._generation = 1
    return b


def _take(bridge: Any, mid: int, generation: int = 1) -> Pending:
    record = KafkaRecord("t", b"dev", b"{}", [], "dev", 0)
    p = Pending(generation, mid, 1, 0.0, record)
    bridge._pending[(generation, mid)] = p
    return p


def _acks(bridge: Any) -> float:
    return float(bridge.metrics.acks._value.get())


def test_delivered_records_are_acked_together(bridge):
    pendings = [_take(bridge, m) for m in (5, 6, 7)]
    bridge.on_delivered(pendings)
    assert bridge.acked == [5, 6, 7]
    assert bridge.in_flight() == 0
    assert _acks(bridge) == 3


def test_a_message_is_never_acked_twice(bridge):
    p = _take(bridge, 5)
    bridge.on_delivered([p])
    bridge.on_delivered([p])  # a second answer (a retry that also got through)
    assert bridge.acked == [5]
    # The same mid reused by the broker for a new message: only that one's answer acks it.
    q = _take(bridge, 5)
    bridge.on_delivered([p])
    assert bridge.acked == [5]
    bridge.on_delivered([q])
    assert bridge.acked == [5, 5]


def test_acks_of_an_old_connection_are_dropped(bridge):
    old = _take(bridge, 5, generation=1)
    bridge._generation = 2  # reconnected: mid 5 means another message now
    bridge.on_delivered([old])
    assert bridge.acked == []
    assert bridge.in_flight() == 0


def test_kafka_errors_show_in_health_until_kafka_answers(bridge):
    bridge._producer = object()
    bridge._connected.set()
    bridge._subscribed.set()
    bridge.on_kafka_status(ConnectionError("port 1 refused"))
    ok, details = bridge.health()
    assert not ok
    assert details["kafka_connected"] is False
    assert "port 1 refused" in details["kafka_error"]
    bridge.on_kafka_status(None)
    ok, details = bridge.health()
    assert ok, details
    assert "kafka_error" not in details


def test_failed_records_are_retried_together_and_not_acked(bridge, monkeypatch):
    timers: list[Any] = []

    class Timer:
        def __init__(self, delay, fn, args):
            self.delay, self.fn, self.args, self.daemon = delay, fn, args, False
            timers.append(self)

        def start(self):
            pass

    monkeypatch.setattr("cloud_stream.bridge.service.threading.Timer", Timer)
    resent: list[int] = []
    bridge._producer = type(
        "P", (), {"send_many": lambda self, ps: resent.extend(p.mid for p in ps)}
    )()
    pendings = [_take(bridge, m) for m in (1, 2, 3)]
    bridge.on_failed(pendings, TimeoutError("slow"))
    assert bridge.acked == []
    assert bridge.in_flight() == 3
    assert len(timers) == 1
    assert all(p.attempt == 1 for p in pendings)
    bridge._generation = 2
    _take(bridge, 9, generation=2)
    timers[0].fn(*timers[0].args)  # of an old connection: dropped, the broker redelivers
    assert resent == []
    assert bridge.in_flight() == 1


def test_partition_of_matches_kafka_default_partitioner():
    # aiokafka's own implementation, independent of the murmur2 partition_of uses.
    from aiokafka.partitioner import DefaultPartitioner

    for key in (b"dev-00", b"dev-01", b"camera-7", b"x" * 40):
        for count in (1, 4, 7):
            expected = DefaultPartitioner()(key, list(range(count)), list(range(count)))
            assert partition_of(key, count) == expected


def _sent(bridge: Any) -> list[Pending]:
    sent: list[Pending] = []
    bridge._producer = type("P", (), {"send_many": lambda self, ps: sent.extend(ps)})()
    return sent


def test_a_read_is_translated_and_handed_over_together(bridge, result_factory):
    from pipeline.schemas import encode

    sent = _sent(bridge)
    good = result_factory()
    topic = f"edgeloop/v1/{good.site}/{good.device}/result"
    ota = f"edgeloop/v1/{good.site}/{good.device}/ota"
    bridge._receive(
        [
            (topic, 1, 1, False, encode(good), None),
            (topic, 2, 1, True, b"not json", None),
            (ota, 3, 1, False, b"{}", None),  # an OTA offer: not ours, acked at once
        ]
    )
    assert [p.mid for p in sent] == [1, 2]
    assert isinstance(sent[0].record, KafkaRecord)
    assert sent[0].record.value == encode(good)
    assert dict(sent[0].record.headers)["id"] == good.id.encode()
    assert sent[1].record.reason == "not_json"  # type: ignore[union-attr]
    assert bridge.acked == [3]
    assert bridge.in_flight() == 2
    assert bridge.metrics.redelivered._value.get() == 1
    bridge.on_delivered(sent)
    assert bridge.acked == [3, 1, 2]
    assert bridge.in_flight() == 0


def test_nothing_is_taken_while_draining(bridge):
    sent = _sent(bridge)
    bridge._draining = True
    bridge._receive([("edgeloop/v1/s/d/result", 1, 1, False, b"{}", None)])
    assert sent == []
    assert bridge.acked == []
    assert bridge.in_flight() == 0
