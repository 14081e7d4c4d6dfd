"""Ticks: time-based rules, idle state and derived points, per partition of the state."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner as AioPartitioner
from kafka.partitioner.default import DefaultPartitioner as KafkaPartitioner

from cloud_stream.kafka_conn import partition_of
from cloud_stream.worker import agents as agents_module
from cloud_stream.worker.config import AuditConfig, CloudConfig
from tests.cloud_stream.alerts.messages import NS, T0, result, status, verdict
from tests.cloud_stream.worker.fakes import (
    FakeEvent,
    FakeMessage,
    FakeStream,
    Harness,
    RecordingWriter,
    builtin_ref,
    harness,
    metric,
)

N = 4
OFFLINE = """
rules:
  - id: offline
    kind: device_offline
    after_s: 60
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


class _Cluster:
    """The part of kafka-python's ClusterMetadata its partitioner reads."""

    def __init__(self, n: int) -> None:
        self.n = n

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))


def kafka_partition(key: str, n: int) -> int:
    """Where kafka-python's producer (the bridge) puts ``key``."""
    return int(KafkaPartitioner().partition("t", key, key.encode(), None, None, _Cluster(n)))


def _two_devices() -> tuple[str, str]:
    """Two device ids that kafka-python puts in different partitions of N."""
    first = "cam-01"
    for i in range(2, 100):
        other = f"cam-{i:02d}"
        if kafka_partition(other, N) != kafka_partition(first, N):
            return first, other
    raise AssertionError("no second partition")


A, B = _two_devices()
PA, PB = kafka_partition(A, N), kafka_partition(B, N)


@pytest.mark.parametrize("n", [1, 3, 4, 12])
def test_partition_of_matches_the_kafka_clients(n: int) -> None:
    keys = ["cam-01", "cam-02", "edge-01", "plant-a/line1", "plant-b/line-7", "x", "ä-ö"]
    keys += [f"dev-{i}" for i in range(50)]
    aio = AioPartitioner()
    for key in keys:
        want = kafka_partition(key, n)
        assert partition_of(key.encode(), n) == want, key
        assert aio(key.encode(), list(range(n)), list(range(n))) == want, key
    assert len({partition_of(k.encode(), n) for k in keys}) == n  # and it spreads them


def _tick(h: Harness, partition: int, now: int | None) -> None:
    value = None if now is None else {"now": now}
    msg = FakeMessage("edgeloop-cloud-ticks", partition, 0, b"tick", None)
    asyncio.run(h.agents.on_tick(FakeStream([FakeEvent(msg, value)])))
    assert metric(h.components.metrics, "edgeloop_worker_errors_total", agent="on_tick") == 0


def _feed(h: Harness, handler: Any, topic: str, *messages: Any) -> None:
    async def go() -> None:
        for m in messages:
            await handler(h.record(topic, m))

    asyncio.run(go())


def test_offline_fires_after_after_s_and_only_for_the_ticked_partition() -> None:
    h = harness(OFFLINE, partitions=N)
    _feed(
        h,
        h.agents.on_status,
        "edgeloop.status",
        status(1, T0, "online", device=A),
        status(1, T0, "online", device=B),
    )
    _tick(h, PA, T0 + 30 * NS)
    assert h.fake("alerts").sent == []  # not yet after_s
    _tick(h, PA, T0 + 61 * NS)
    assert [(a.device, a.state) for a in h.fake("alerts").alerts()] == [(A, "firing")]
    _tick(h, PB, T0 + 61 * NS)
    assert [(a.device, a.state) for a in h.fake("alerts").alerts()] == [
        (A, "firing"),
        (B, "firing"),
    ]
    _tick(h, PA, T0 + 90 * NS)
    assert len(h.fake("alerts").sent) == 2  # firing once, not on every tick
    # the fired state was stored: a status brings the device back
    _feed(h, h.agents.on_status, "edgeloop.status", status(2, T0 + 100 * NS, "online", device=A))
    assert h.fake("alerts").alerts()[-1].state == "resolved"


def test_ticks_of_other_partitions_leave_state_alone() -> None:
    h = harness(OFFLINE, partitions=N)
    _feed(h, h.agents.on_status, "edgeloop.status", status(1, T0, "online", device=A))
    before = dict(h.tables.rules)
    for p in range(N):
        if p != PA:
            _tick(h, p, T0 + 3600 * NS)
    assert h.fake("alerts").sent == []
    assert dict(h.tables.rules) == before


def test_idle_state_is_deleted_by_its_own_partition_only() -> None:
    h = harness(DRIFT, partitions=N)
    _feed(
        h,
        h.agents.on_verdict,
        "edgeloop.verdicts",
        verdict(1, T0, "ok", "ok", device=A),
        verdict(1, T0, "ok", "ok", device=B),
    )
    key_a = f"agreement_low|plant-a/{A}/conveyor-int8@1.0.0"
    key_b = f"agreement_low|plant-a/{B}/conveyor-int8@1.0.0"
    h.tables.rules["removed_rule|plant-a/x"] = {"left": "alone"}
    assert {key_a, key_b} <= set(h.tables.rules)
    _tick(h, PA, T0 + 60 * NS)  # still verdicts in the window: kept
    assert {key_a, key_b} <= set(h.tables.rules)
    _tick(h, PA, T0 + 7200 * NS)  # window empty: idle
    assert key_a not in h.tables.rules
    assert key_b in h.tables.rules
    assert h.tables.rules["removed_rule|plant-a/x"] == {"left": "alone"}
    _tick(h, PB, T0 + 7200 * NS)
    assert key_b not in h.tables.rules


def test_a_tick_without_a_time_uses_the_worker_clock() -> None:
    h = harness(OFFLINE, partitions=N, clock_ns=T0 + 600 * NS)
    _feed(h, h.agents.on_status, "edgeloop.status", status(1, T0, "online", device=A))
    _tick(h, PA, None)
    [alert] = h.fake("alerts").alerts()
    assert alert.ts == T0 + 600 * NS


def _populated(writer: RecordingWriter, monkeypatch: pytest.MonkeyPatch) -> tuple[Harness, list]:
    clock = [1000.0]
    fake_time = SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter)
    monkeypatch.setattr(agents_module, "time", fake_time)
    config = CloudConfig(audit=AuditConfig(publish_every_s=30, window_s=600, step_s=60))
    h = harness(config=config, partitions=N, writer=writer)
    ref = builtin_ref("conveyor-int8")
    for dev in (A, B):
        _feed(h, h.agents.on_status, "edgeloop.status", status(1, T0, "online", device=dev))
        _feed(
            h,
            h.agents.on_result,
            "edgeloop.results",
            *[result(i, T0 + i * NS, device=dev, model=ref, score=0.9) for i in range(2, 6)],
        )
        _feed(
            h,
            h.agents.on_verdict,
            "edgeloop.verdicts",
            verdict(6, T0 + 6 * NS, "ok", "ok", device=dev, edge_model=ref),
        )
    return h, clock


def _lines(writer: RecordingWriter, measurement: str, call: int = -1) -> list[str]:
    return [line for line in writer.calls[call] if line.startswith(measurement + ",")]


def test_fleet_and_drift_points_are_written_per_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = RecordingWriter()
    h, _ = _populated(writer, monkeypatch)
    now = T0 + 10 * NS
    _tick(h, PA, now)
    [fleet_line] = _lines(writer, "fleet")
    assert f"device={A}" in fleet_line
    assert f"device={B}" not in fleet_line
    assert 'state="online"' in fleet_line
    assert "results=4i" in fleet_line
    assert fleet_line.endswith(f" {T0 + 5 * NS}")  # the last result changed the row
    drift = _lines(writer, "drift")
    assert drift
    assert all(f"device={A}," in line for line in drift)
    assert all(line.endswith(f" {now}") for line in drift)
    assert any("psi=" in line and "results=4i" in line for line in drift)
    assert any("agreement=1" in line and "verdicts=1i" in line for line in drift)
    assert metric(h.components.metrics, "edgeloop_worker_fleet_devices") == 2


def test_points_are_written_at_most_every_publish_every_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = RecordingWriter()
    h, clock = _populated(writer, monkeypatch)
    _tick(h, PA, T0 + 10 * NS)
    assert len(writer.calls) == 1
    clock[0] += 29
    _tick(h, PA, T0 + 11 * NS)
    assert len(writer.calls) == 1
    _tick(h, PB, T0 + 11 * NS)  # each partition has its own schedule
    assert len(writer.calls) == 2
    assert all(f"device={B}" in line for line in writer.calls[1])
    clock[0] += 2
    _tick(h, PA, T0 + 12 * NS)
    assert len(writer.calls) == 3
    assert _lines(writer, "fleet") == []  # the row did not change since it was written
    assert _lines(writer, "drift")
    _feed(h, h.agents.on_status, "edgeloop.status", status(9, T0 + 20 * NS, "degraded", device=A))
    clock[0] += 31
    _tick(h, PA, T0 + 21 * NS)
    [fleet_line] = _lines(writer, "fleet")
    assert 'state="degraded"' in fleet_line


def test_no_writer_no_points(monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(OFFLINE, partitions=N)  # writer None
    _feed(h, h.agents.on_status, "edgeloop.status", status(1, T0, "online", device=A))
    _tick(h, PA, T0 + NS)
    assert metric(h.components.metrics, "edgeloop_worker_fleet_devices") == 1


def test_send_ticks_goes_to_the_owned_tick_partitions() -> None:
    h = harness(clock_ns=T0)
    tp = SimpleNamespace
    assigned = [
        tp(topic="edgeloop-cloud-ticks", partition=0),
        tp(topic="edgeloop.results", partition=1),
        tp(topic="edgeloop-cloud-ticks", partition=3),
    ]
    asyncio.run(h.agents.send_ticks(assigned))
    sent = h.fake("ticks").sent
    assert [(s.key, s.value, s.partition) for s in sent] == [
        (b"tick", {"now": T0}, 0),
        (b"tick", {"now": T0}, 3),
    ]
