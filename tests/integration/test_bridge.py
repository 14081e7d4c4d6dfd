"""The bridge against real Mosquitto and Kafka: every message counted."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.schemas import decode, encode, to_properties
from tests.integration.helpers import drain

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9"
CLIENTS = ["aiokafka", "kafka-python"]


def _with_client(settings: dict, client: str) -> dict:
    return dict(settings, producer={**settings["producer"], "client": client})


def _results(result_factory, site, devices, per_device):
    msgs = []
    for seq in range(per_device):
        for d in range(devices):
            msgs.append(result_factory(site=site, device=f"dev-{d:02d}", seq=seq))
    return msgs


def _topic(msg, stream="result"):
    return f"edgeloop/v1/{msg.site}/{msg.device}/{stream}"


def _publish_frame(publisher, meta, jpeg, timeout):
    """Publish a frame as the edge does: JPEG bytes, metadata in user properties."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = to_properties(meta)
    topic = f"edgeloop/v1/{meta.site}/{meta.device}/frame"
    publisher.publish(topic, jpeg, props).wait_for_publish(timeout)


def _check_order(records):
    by_device: dict[str, list[int]] = {}
    for r in records:
        msg = decode(r.value)
        by_device.setdefault(msg.device, []).append(msg.seq)
    for device, seqs in by_device.items():
        # Redelivery after a crash replays a tail that Kafka already has; dropping
        # what is not newer than everything before it must leave every seq, in order.
        newest, kept = -1, []
        for s in seqs:
            if s > newest:
                kept.append(s)
                newest = s
        assert kept == sorted(set(seqs)), f"{device} out of order: {seqs[:80]}"


@pytest.mark.parametrize("client", CLIENTS)
def test_results_frames_and_status_reach_kafka(
    devstack,
    bridge_settings,
    bridge_factory,
    publisher,
    result_factory,
    frame_meta_factory,
    unique,
    client,
):
    bridge_settings = _with_client(bridge_settings, client)
    bridge = bridge_factory(bridge_settings)
    msgs = _results(result_factory, unique, devices=5, per_device=40)
    assert publisher.publish_all((_topic(m), encode(m)) for m in msgs) == len(msgs)
    meta = frame_meta_factory(
        site=unique,
        device="dev-00",
        seq=1000,
        result_id=msgs[0].id,
        width=64,
        height=48,
        size=len(JPEG),
        phash="0011223344556677",
    )
    _publish_frame(publisher, meta, JPEG, timeout=5)
    topics = bridge_settings["topic_map"]
    results = drain(devstack.kafka_bootstrap, [topics["result"]], len(msgs))
    frames = drain(devstack.kafka_bootstrap, [topics["frame"]], 1)
    assert sorted(decode(r.value).id for r in results) == sorted(m.id for m in msgs)
    assert {r.key for r in results} == {f"dev-{d:02d}".encode() for d in range(5)}
    _check_order(results)
    (frame,) = frames
    assert frame.value == JPEG
    assert dict(frame.headers)["id"] == meta.id.encode()
    assert bridge.in_flight() == 0
    ok, details = bridge.health()
    assert ok, details
    assert details["kafka_client"] == client


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    junk=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.dictionaries(
                st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=5
            ).map(lambda d: json.dumps(d).encode()),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_bad_payloads_go_to_dlq_and_good_ones_pass(
    devstack, bridge_settings, bridge_factory, publisher, result_factory, junk
):
    site = bridge_settings["site"]
    if not getattr(publisher, "_bridge_started", False):
        bridge_factory(bridge_settings)
        publisher._bridge_started = True
    batch = uuid.uuid4().hex[:8]
    good = [result_factory(site=site, device=f"ok-{batch}", seq=i) for i in range(5)]
    oversize = b'{"type": "result", "pad": "' + b"x" * 300_000 + b'"}'
    spoofed = result_factory(site=site, device="someone-else")
    bad = [(f"edgeloop/v1/{site}/bad-{batch}/result", p) for p in junk]
    bad += [
        (f"edgeloop/v1/{site}/bad-{batch}/result", oversize),
        (f"edgeloop/v1/{site}/bad-{batch}/bogus", b"{}"),
        (f"edgeloop/v1/{site}/bad-{batch}/result", encode(spoofed)),
        (f"edgeloop/v1/{site}/bad-{batch}/frame", b"\xff\xd8garbage"),
    ]
    items = (
        [(_topic(m), encode(m)) for m in good[:3]]
        + bad
        + [(_topic(m), encode(m)) for m in good[3:]]
    )
    assert publisher.publish_all(items) == len(items)
    topics = bridge_settings["topic_map"]
    dlq = [
        r
        for r in drain(
            devstack.kafka_bootstrap, [bridge_settings["dlq_topic"]], 0, timeout=30, idle_s=2
        )
        if r.key == f"bad-{batch}".encode()
    ]
    deadline = time.monotonic() + 60
    while len(dlq) < len(bad) and time.monotonic() < deadline:
        more = drain(devstack.kafka_bootstrap, [bridge_settings["dlq_topic"]], 0, timeout=10)
        dlq = [r for r in more if r.key == f"bad-{batch}".encode()]
        if len(dlq) < len(bad):
            time.sleep(1)
    assert sorted(r.value for r in dlq) == sorted(p for _, p in bad)
    reasons = {dict(r.headers)["dlq.reason"].decode() for r in dlq}
    assert {"oversize", "unknown_stream", "unknown_type", "invalid"} <= reasons
    assert all(dict(r.headers)["dlq.detail"] for r in dlq)
    ok_records = [
        r
        for r in drain(devstack.kafka_bootstrap, [topics["result"]], 1, timeout=30)
        if r.key == f"ok-{batch}".encode()
    ]
    assert sorted(decode(r.value).seq for r in ok_records) == list(range(5))


def _acks(bridge) -> float:
    for line in bridge.metrics().splitlines():
        if line.startswith("edgeloop_bridge_acks_total "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.parametrize("client", CLIENTS)
def test_kill9_mid_stream_loses_nothing(
    devstack, bridge_settings, bridge_process_factory, publisher, result_factory, unique, client
):
    bridge_settings = _with_client(bridge_settings, client)
    bridge = bridge_process_factory(bridge_settings)
    bridge.start()
    msgs = _results(result_factory, unique, devices=10, per_device=300)
    done = threading.Event()

    def publish() -> None:
        publisher.publish_all(((_topic(m), encode(m)) for m in msgs), timeout=120)
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    # Kill it mid-stream: after it forwarded some, before the publisher is done.
    deadline = time.monotonic() + 60
    while _acks(bridge) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    acked_before = _acks(bridge)
    assert 300 <= acked_before < len(msgs)
    bridge.kill(signal.SIGKILL)
    time.sleep(1.0)  # messages keep arriving at the broker while it is down
    bridge.start()
    thread.join(150)
    assert done.is_set()
    records = drain(
        devstack.kafka_bootstrap, [bridge_settings["topic_map"]["result"]], len(msgs), timeout=120
    )
    ids = [decode(r.value).id for r in records]
    assert set(ids) == {m.id for m in msgs}, f"lost {len({m.id for m in msgs} - set(ids))}"
    _check_order(records)
    print(
        f"{client}: kill -9 after {acked_before:.0f} acks: {len(msgs)} sent, "
        f"{len(ids) - len(set(ids))} duplicates, 0 lost"
    )


def test_unreachable_kafka_acks_nothing_and_says_so(
    devstack, bridge_settings, bridge_factory, publisher, result_factory, unique
):
    from tests.integration.helpers import free_port

    # Nothing listens there: the aiokafka bridge starts anyway and keeps trying.
    wrong = dict(
        _with_client(bridge_settings, "aiokafka"),
        kafka={"bootstrap_servers": [f"127.0.0.1:{free_port()}"]},
        producer={**bridge_settings["producer"], "client": "aiokafka", "create_topics": False},
    )
    bridge = bridge_factory(wrong)
    msgs = _results(result_factory, unique, devices=4, per_device=25)
    assert publisher.publish_all((_topic(m), encode(m)) for m in msgs) == len(msgs)
    deadline = time.monotonic() + 30
    while bridge.in_flight() < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bridge.in_flight() == len(msgs)  # held, within receive_maximum
    assert bridge.metrics.acks._value.get() == 0  # nothing acknowledged to the broker
    ok, details = bridge.health()
    assert not ok
    assert details["mqtt_connected"] is True
    assert details["kafka_connected"] is False
    assert "KafkaConnectionError" in details["kafka_error"], details
    bridge.stop(timeout=1)
    # The broker kept them in the session: the same instance with the right Kafka
    # delivers every one.
    bridge_factory(_with_client(bridge_settings, "aiokafka"))
    records = drain(devstack.kafka_bootstrap, [bridge_settings["topic_map"]["result"]], len(msgs))
    assert sorted(decode(r.value).id for r in records) == sorted(m.id for m in msgs)
    _check_order(records)


def test_two_partitioned_instances_share_load_and_keep_order(
    devstack, bridge_settings, bridge_factory, publisher, result_factory, unique
):
    first = dict(bridge_settings, partition={"index": 0, "count": 2})
    second = dict(
        bridge_settings,
        instance=f"{unique}-b2",
        partition={"index": 1, "count": 2},
        metrics={"enabled": False},
        health={"enabled": False},
    )
    b1, b2 = bridge_factory(first), bridge_factory(second)
    msgs = _results(result_factory, unique, devices=12, per_device=50)
    assert publisher.publish_all((_topic(m), encode(m)) for m in msgs) == len(msgs)
    records = drain(devstack.kafka_bootstrap, [bridge_settings["topic_map"]["result"]], len(msgs))
    assert sorted(decode(r.value).id for r in records) == sorted(m.id for m in msgs)
    _check_order(records)
    out1 = sum(
        s.value for s in b1.metrics.messages_out.collect()[0].samples if s.name.endswith("_total")
    )
    out2 = sum(
        s.value for s in b2.metrics.messages_out.collect()[0].samples if s.name.endswith("_total")
    )
    assert out1 + out2 == len(msgs)
    assert out1 > len(msgs) * 0.2
    assert out2 > len(msgs) * 0.2


def _children(pid: int) -> list[int]:
    from pathlib import Path

    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_keep_order_and_a_killed_worker_comes_back(
    devstack, bridge_settings, bridge_process_factory, publisher, result_factory, unique
):
    bridge = bridge_process_factory(dict(bridge_settings, workers=2))
    bridge.start()
    assert bridge.proc is not None
    workers = [p for p in _children(bridge.proc.pid) if p != bridge.proc.pid]
    assert len(workers) >= 2  # (plus multiprocessing's resource tracker, if any)
    first = _results(result_factory, unique, devices=10, per_device=100)
    assert publisher.publish_all((_topic(m), encode(m)) for m in first) == len(first)
    topic = bridge_settings["topic_map"]["result"]
    records = drain(devstack.kafka_bootstrap, [topic], len(first))
    assert {decode(r.value).id for r in records} == {m.id for m in first}
    _check_order(records)
    # kill -9 one worker: its session keeps its devices' messages until it is back.
    os.kill(workers[-1], signal.SIGKILL)
    second = [
        result_factory(site=unique, device=f"dev-{d:02d}", seq=1000 + i)
        for i in range(50)
        for d in range(10)
    ]
    assert publisher.publish_all((_topic(m), encode(m)) for m in second) == len(second)
    records = drain(devstack.kafka_bootstrap, [topic], len(first) + len(second), timeout=120)
    assert {decode(r.value).id for r in records} == {m.id for m in first + second}
    _check_order(records)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_frame_larger_than_kafka_takes_goes_to_dlq_and_traffic_flows(
    devstack,
    bridge_settings,
    bridge_factory,
    publisher,
    result_factory,
    frame_meta_factory,
    unique,
    client,
):
    """A 2 MB frame (Kafka's default limit is 1 MiB) used to be retried forever."""

    bridge_settings = _with_client(bridge_settings, client)
    bridge_factory(bridge_settings)
    big = b"\xff\xd8" + b"\x22" * 2_000_000 + b"\xff\xd9"
    meta = frame_meta_factory(site=unique, device="cam-big", label="ok", size=len(big))
    _publish_frame(publisher, meta, big, timeout=30)
    after = _results(result_factory, unique, devices=1, per_device=5)
    publisher.publish_all((_topic(m), encode(m)) for m in after)
    dlq = drain(devstack.kafka_bootstrap, [bridge_settings["dlq_topic"]], 1, timeout=60)
    [letter] = [r for r in dlq if r.key == b"cam-big"]
    headers = dict(letter.headers)
    assert headers["dlq.reason"] == b"oversize"
    assert headers["dlq.size"] == str(len(big)).encode()
    assert letter.value == big[: int(headers["dlq.kept"])]
    records = drain(devstack.kafka_bootstrap, [bridge_settings["topic_map"]["result"]], 5)
    assert {decode(r.value).id for r in records} == {m.id for m in after}
