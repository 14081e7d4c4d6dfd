"""Edge outbox + MQTT publisher against real Mosquitto: every message counted.

The happy path and the status/last-will checks use the devstack's Mosquitto.
The broker-outage tests start a private Mosquitto on a free port (persistence
on), so stopping or freezing it never disturbs other tests.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_node.outbox import Outbox, OutboxItem, Priority
from edge_node.publish import Publisher
from pipeline.config.base import MqttConfig
from pipeline.devstack.probes import mqtt_connect
from pipeline.schemas import FrameMetaV1, ModelRef, ResultV1, StatusV1, TelemetryV1, new_id, now_ns
from pipeline.schemas.codec import decode, encode
from pipeline.schemas.properties import from_properties, to_properties
from pipeline.topics import Stream, mqtt_topic
from tests.integration.helpers import REPO, free_port

MODEL = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)


# --- helpers ------------------------------------------------------------------------
def _result(site: str, device: str, seq: int, **kw: Any) -> ResultV1:
    fields: dict[str, Any] = {
        "id": new_id(),
        "site": site,
        "device": device,
        "seq": seq,
        "ts": now_ns(),
        "model": MODEL,
        "task": "classify",
        "source": "cam0",
        "label": "ok",
        "score": 0.97,
        "route": "confident",
        "latency_ms": 1.2,
    }
    fields.update(kw)
    return ResultV1(**fields)


def _mqtt(host: str, port: int, **kw: Any) -> MqttConfig:
    return MqttConfig(
        host=host,
        port=port,
        keepalive_s=5,
        session_expiry_s=600,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        **kw,
    )


class Subscriber:
    """A v5 subscriber with a persistent session that reconnects by itself."""

    def __init__(self, host: str, port: int, topic: str, client_id: str):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(1, 2)
        self.messages: list[Any] = []
        self.result_seqs: list[int] = []  # decoded once, on arrival
        self.cond = threading.Condition()
        self.topic = topic
        self._subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = 65535
        self.client.connect(host, port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(10), "SUBACK timed out"

    def _on_connect(self, client: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure and not flags.session_present:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        seq = decode(msg.payload).seq if msg.topic.endswith("/result") else None
        with self.cond:
            self.messages.append(msg)
            if seq is not None:
                self.result_seqs.append(seq)
            self.cond.notify_all()

    def wait_until(self, predicate: Callable[[list[Any]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def seqs(self) -> list[int]:
        """Seqs of the result messages received, duplicates included."""
        with self.cond:
            return list(self.result_seqs)

    def wait_for_seqs(self, want: set[int], timeout: float) -> bool:
        """Wait until every seq in ``want`` arrived at least once."""
        deadline = time.monotonic() + timeout
        with self.cond:
            seen: set[int] = set()
            done = 0
            while True:
                seen.update(self.result_seqs[done:])
                done = len(self.result_seqs)
                if want <= seen:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(host: str, port: int, topic: str, client_id: str) -> Subscriber:
        sub = Subscriber(host, port, topic, client_id)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def publisher_factory() -> Iterator[Callable[..., Publisher]]:
    made: list[tuple[Publisher, Outbox]] = []

    def make(outbox: Outbox, config: MqttConfig, site: str, device: str) -> Publisher:
        pub = Publisher(outbox, config, site=site, device=device, max_inflight=64)
        made.append((pub, outbox))
        pub.start()
        return pub

    yield make
    for pub, outbox in made:
        pub.stop(drain_timeout=2)
        outbox.close()


# A publisher in its own process, for kill -9. It prints each seq once its put returned.
_CHILD = textwrap.dedent(
    """
    import sys, logging
    from pathlib import Path
    from edge_node.outbox import Outbox
    from edge_node.publish import Publisher
    from pipeline.config.base import MqttConfig
    from pipeline.schemas import ModelRef, ResultV1, encode, new_id, now_ns
    from pipeline.topics import Stream

    logging.basicConfig(level=logging.WARNING)
    path, host, port, site, device, mode, count = sys.argv[1:8]
    box = Outbox(Path(path), max_bytes=10**9, device=device)
    cfg = MqttConfig(host=host, port=int(port), keepalive_s=5, session_expiry_s=600,
                     reconnect_min_s=0.2, reconnect_max_s=1.0)
    pub = Publisher(box, cfg, site=site, device=device, max_inflight=64)
    pub.start()
    assert pub.wait_connected(10)
    print("CONNECTED", flush=True)
    model = ModelRef(name="m", version="1.0.0", sha256="ab" * 32)
    if mode == "produce":
        for _ in range(int(count)):
            seq = box.next_seq()
            msg = ResultV1(id=new_id(), site=site, device=device, seq=seq, ts=now_ns(),
                           model=model, task="classify", source="cam0", label="ok",
                           score=0.9, route="confident", latency_ms=1.0)
            box.put(Stream.RESULT, encode(msg), seq=seq)
            print(seq, flush=True)
    if mode == "hold":
        sys.stdin.read()
    assert pub.wait_idle(120), "not drained"
    print("IDLE", pub.stats, flush=True)
    pub.stop(5)
    box.close()
    """
)


class ChildPublisher:
    """The publisher script above as a child process; stdout lines are collected."""

    def __init__(self, outbox: Path, host: str, port: int, site: str, device: str, mode: str, n=0):
        argv = [str(outbox), host, str(port), site, device, mode, str(n)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *argv],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<EOF>")
            self.cond.notify_all()

    def wait_line(self, predicate: Callable[[list[str]], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or "<EOF>" in self.lines:
                    return predicate(self.lines)
                self.cond.wait(left)
            return True

    def put_seqs(self) -> set[int]:
        with self.cond:
            return {int(x) for x in self.lines if x.isdigit()}

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close()

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        self._reader.join(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def output(self) -> str:
        with self.cond:
            return "\n".join(self.lines[-30:])


@pytest.fixture
def child_factory() -> Iterator[Callable[..., ChildPublisher]]:
    made: list[ChildPublisher] = []

    def make(*args: Any, **kw: Any) -> ChildPublisher:
        child = ChildPublisher(*args, **kw)
        made.append(child)
        return child

    yield make
    for child in made:
        if child.proc.poll() is None:
            child.kill()


class PrivateMosquitto:
    """A Mosquitto of our own on a free port, with persistence, for outage tests."""

    def __init__(self, workdir: Path, extra: str = ""):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        data = workdir / "mosquitto-data"
        data.mkdir()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {workdir}/mosquitto.log\n" + extra
        )
        self.argv = [binary, "-c", str(self.conf)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        # Polling the port: a broker has no event to wait on before it listens.
        while mqtt_connect("127.0.0.1", self.port, timeout=0.5) is not None:
            assert self.proc.poll() is None, "private mosquitto exited"
            assert time.monotonic() < deadline, "private mosquitto did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()  # SIGTERM: mosquitto writes its persistence file
            self.proc.wait(30)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def _status(msg: Any) -> StatusV1:
    status = decode(msg.payload)
    assert isinstance(status, StatusV1)
    return status


# --- tests --------------------------------------------------------------------------
def test_every_message_arrives_and_validates(
    devstack, unique, tmp_path, subscriber_factory, publisher_factory
):
    host, port = devstack.mqtt_address
    site, device = unique, f"{unique}-d"
    sub = subscriber_factory(host, port, f"edgeloop/v1/{site}/{device}/#", f"{unique}-sub")
    box = Outbox(tmp_path / "o.db", max_bytes=50_000_000, device=device)
    # Put before the publisher starts (offline backlog) and while it runs.
    sent: dict[str, set[int]] = {"result": set(), "frame": set(), "telemetry": set()}

    def put_batch(n: int) -> None:
        for i in range(n):
            seq_f, seq_r = box.next_seq(), box.next_seq()
            jpeg = b"\xff\xd8" + os.urandom(2000) + b"\xff\xd9"
            frame = FrameMetaV1(
                id=new_id(), site=site, device=device, seq=seq_f, ts=now_ns(), model=MODEL,
                source="cam0", result_id=new_id(), reason="uncertain", label="crack",
                score=0.55, width=96, height=96, size=len(jpeg), phash="0123456789abcdef",
            )  # fmt: skip
            anomalous = i % 10 == 0
            result = _result(site, device, seq_r, route="anomalous" if anomalous else "uncertain")
            box.put_many(
                [
                    OutboxItem(Stream.FRAME, jpeg, seq_f, dict(to_properties(frame))),
                    OutboxItem(
                        Stream.RESULT,
                        encode(result),
                        seq_r,
                        priority=Priority.ALERT if anomalous else None,
                    ),
                ]
            )
            sent["frame"].add(seq_f)
            sent["result"].add(seq_r)
            if i % 25 == 0:
                seq_t = box.next_seq()
                tele = TelemetryV1(
                    id=new_id(), site=site, device=device, seq=seq_t, ts=now_ns(),
                    interval_s=10.0, uptime_s=5.0, counters={"outbox.evicted": 0},
                    gauges={"outbox.depth": float(box.depth())},
                )  # fmt: skip
                box.put(Stream.TELEMETRY, encode(tele), seq=seq_t)
                sent["telemetry"].add(seq_t)

    put_batch(300)
    pub = publisher_factory(box, _mqtt(host, port), site, device)
    assert pub.wait_connected(10)
    put_batch(300)
    total = sum(len(s) for s in sent.values())
    assert pub.wait_idle(60), f"outbox still holds {box.depth()}"
    assert sub.wait_until(lambda ms: len(ms) >= total + 1, 30), len(sub.messages)

    got: dict[str, list[int]] = {"result": [], "frame": [], "telemetry": []}
    statuses = []
    for msg in sub.messages:
        stream = msg.topic.rsplit("/", 1)[1]
        if stream == "status":
            statuses.append(_status(msg))
        elif stream == "frame":
            meta = from_properties(msg.properties.UserProperty, where=msg.topic)
            assert isinstance(meta, FrameMetaV1)
            assert meta.size == len(msg.payload)
            assert msg.payload[:2] == b"\xff\xd8"
            got["frame"].append(meta.seq)
        else:
            decoded = decode(msg.payload, where=msg.topic)
            assert decoded.device == device
            got[stream].append(decoded.seq)
    for stream, seqs in got.items():
        assert set(seqs) == sent[stream], stream
        assert seqs == sorted(seqs), f"{stream} out of seq order"  # no reconnects here
    assert [s.state for s in statuses] == ["online"]
    assert pub.stats.acked == total
    assert pub.stats.refused == 0
    assert box.depth() == 0


def test_status_is_retained_online_and_offline_on_stop(
    devstack, unique, tmp_path, subscriber_factory
):
    host, port = devstack.mqtt_address
    site, device = unique, f"{unique}-d"
    box = Outbox(tmp_path / "o.db", max_bytes=10**6, device=device)
    pub = Publisher(box, _mqtt(host, port), site=site, device=device)
    pub.start()
    assert pub.wait_connected(10)
    status_topic = mqtt_topic(site, device, Stream.STATUS)
    # First make sure the broker has the "online" status: a subscriber that comes
    # before it would get it live, without the retain flag.
    probe = subscriber_factory(host, port, status_topic, f"{unique}-probe")
    assert probe.wait_until(lambda ms: any(_status(m).state == "online" for m in ms), 10)
    # A late subscriber still sees "online": it is retained.
    late = subscriber_factory(host, port, status_topic, f"{unique}-late")
    assert late.wait_until(lambda ms: len(ms) >= 1, 10)
    first = late.messages[0]
    assert first.retain
    assert _status(first).state == "online"
    pub.stop(drain_timeout=2)
    box.close()
    assert late.wait_until(lambda ms: len(ms) >= 2, 10)
    offline = _status(late.messages[1])
    assert offline.state == "offline"
    assert offline.reason == "stopped"
    assert offline.seq > _status(first).seq
    assert pub.stats.connected is False


def test_last_will_says_offline_when_the_publisher_is_killed(
    devstack, unique, tmp_path, subscriber_factory, child_factory
):
    host, port = devstack.mqtt_address
    site, device = unique, f"{unique}-d"
    child = child_factory(tmp_path / "o.db", host, port, site, device, "hold")
    assert child.wait_line(lambda ls: "CONNECTED" in ls), child.output()
    sub = subscriber_factory(host, port, mqtt_topic(site, device, Stream.STATUS), f"{unique}-s")
    assert sub.wait_until(lambda ms: any(_status(m).state == "online" for m in ms), 10)
    child.kill()
    assert sub.wait_until(lambda ms: _status(ms[-1]).state == "offline", 15), [
        _status(m).state for m in sub.messages
    ]
    assert _status(sub.messages[-1]).reason == "connection lost"
    # And it is retained: a new subscriber sees "offline" at once.
    again = subscriber_factory(host, port, mqtt_topic(site, device, Stream.STATUS), f"{unique}-a")
    assert again.wait_until(lambda ms: len(ms) >= 1, 10)
    assert _status(again.messages[0]).state == "offline"


@pytest.mark.slow
def test_kill_9_mid_stream_loses_nothing(
    devstack, unique, tmp_path, subscriber_factory, child_factory
):
    host, port = devstack.mqtt_address
    site, device = unique, f"{unique}-d"
    path = tmp_path / "o.db"
    topic = mqtt_topic(site, device, Stream.RESULT)
    sub = subscriber_factory(host, port, topic, f"{unique}-sub")
    first = child_factory(path, host, port, site, device, "produce", 20_000)
    # Kill while it is both putting and publishing.
    assert first.wait_line(lambda ls: len(ls) > 3000), first.output()
    assert sub.wait_until(lambda ms: len(ms) >= 500, 30)
    first.kill()
    put = first.put_seqs()
    arrived_before = len(set(sub.seqs()))
    assert len(put) < 20_000, "killed too late: nothing left mid-stream"
    # Restart from the same outbox file: it sends the rest.
    second = child_factory(path, host, port, site, device, "drain")
    assert second.wait(120) == 0, second.output()
    assert sub.wait_for_seqs(put, 30), f"lost {len(put - set(sub.seqs()))} of {len(put)}"
    got = sub.seqs()
    missing = put - set(got)
    assert not missing, f"lost {len(missing)} of {len(put)}"
    print(
        f"kill -9: {len(put)} puts returned, {arrived_before} arrived before the kill, "
        f"{len(got) - len(set(got))} duplicates, 0 lost"
    )


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["restart", "freeze"])
def test_broker_outage_loses_nothing(
    unique, tmp_path, private_mosquitto, subscriber_factory, publisher_factory, outage
):
    host, port = "127.0.0.1", private_mosquitto.port
    site, device = unique, f"{unique}-d"
    sub = subscriber_factory(host, port, f"edgeloop/v1/{site}/{device}/result", f"{unique}-s")
    box = Outbox(tmp_path / "o.db", max_bytes=10**8, device=device)
    pub = publisher_factory(box, _mqtt(host, port), site, device)
    assert pub.wait_connected(10)
    sent: list[int] = []

    def put(n: int) -> None:
        for _ in range(n):
            seq = box.next_seq()
            box.put(Stream.RESULT, encode(_result(site, device, seq)), seq=seq)
            sent.append(seq)

    put(500)
    assert sub.wait_until(lambda ms: len(ms) >= 100, 30)
    if outage == "restart":
        private_mosquitto.stop()
    else:
        private_mosquitto.signal(signal.SIGSTOP)
    try:
        put(1000)  # buffered in the outbox while the broker is away
        # A stopped broker closes the socket; a frozen one is found out by the
        # keep-alive (5 s here).
        assert pub.wait_disconnected(30), "the publisher did not notice the outage"
        assert box.depth() >= 1000
    finally:
        if outage == "restart":
            private_mosquitto.start()
        else:
            private_mosquitto.signal(signal.SIGCONT)
    assert pub.wait_connected(30)
    put(500)
    assert pub.wait_idle(60), f"outbox still holds {box.depth()}"
    want = set(sent)
    assert sub.wait_for_seqs(want, 60), f"lost {len(want - set(sub.seqs()))}"
    got = sub.seqs()
    assert pub.stats.reconnects >= 1
    print(
        f"broker {outage}: {len(sent)} sent, {len(got) - len(set(got))} duplicates, 0 lost, "
        f"{pub.stats.reconnects} reconnects, {pub.stats.connect_failures} failed connects"
    )


def test_stop_while_the_broker_is_unreachable_keeps_the_rows(tmp_path):
    port = free_port()  # nothing listens here
    box = Outbox(tmp_path / "o.db", max_bytes=10**6, device="cam-01")
    for _ in range(3):
        box.put(Stream.RESULT, b"{}", seq=box.next_seq())
    pub = Publisher(box, _mqtt("127.0.0.1", port), site="plant-a", device="cam-01")
    pub.start()
    assert not pub.wait_connected(1.0)
    t0 = time.monotonic()
    pub.stop(drain_timeout=5)
    assert time.monotonic() - t0 < 3, "stop waited for a broker that is not there"
    assert pub.stats.connect_failures >= 1
    assert pub.stats.published == 0
    assert box.depth() == 3
    assert box.inflight() == 0
    box.close()


def test_a_refused_message_stays_queued_and_does_not_block_the_rest(
    unique, tmp_path, subscriber_factory, publisher_factory
):
    site, device = unique, f"{unique}-d"
    acl = tmp_path / "acl"
    # Anonymous clients may publish results and status, but not telemetry (yet).
    acl.write_text(
        "topic readwrite edgeloop/v1/+/+/result\n"
        "topic readwrite edgeloop/v1/+/+/status\n"
        "topic read edgeloop/v1/+/+/telemetry\n"
    )
    broker = PrivateMosquitto(tmp_path, extra=f"acl_file {acl}\n")
    broker.start()
    try:
        host, port = "127.0.0.1", broker.port
        sub = subscriber_factory(host, port, f"edgeloop/v1/{site}/{device}/+", f"{unique}-s")
        box = Outbox(tmp_path / "o.db", max_bytes=10**7, device=device)
        box.put(Stream.TELEMETRY, b'{"refused": true}', seq=box.next_seq())
        results = []
        for _ in range(200):
            seq = box.next_seq()
            box.put(Stream.RESULT, encode(_result(site, device, seq)), seq=seq)
            results.append(seq)
        pub = publisher_factory(box, _mqtt(host, port), site, device)
        # The results behind the refused message all arrive.
        assert sub.wait_for_seqs(set(results), 30)
        assert pub.wait_depth(1, 10)
        # It went first (lowest seq), so its refusal came before the results' PUBACKs.
        assert pub.stats.refused >= 1
        assert box.depth() == 1, "the refused message must stay in the outbox"
        assert not any(m.topic.endswith("/telemetry") for m in sub.messages)
        # Allow it: mosquitto re-reads the ACL on SIGHUP; the retry delivers it.
        acl.write_text("topic readwrite #\n")
        broker.signal(signal.SIGHUP)
        assert pub.wait_idle(30), f"refused {pub.stats.refused} times, never delivered"
        assert sub.wait_until(lambda ms: any(m.topic.endswith("/telemetry") for m in ms), 10)
    finally:
        broker.stop()


def test_stop_drains_what_is_pending_first(devstack, unique, tmp_path, subscriber_factory):
    host, port = devstack.mqtt_address
    site, device = unique, f"{unique}-d"
    sub = subscriber_factory(host, port, mqtt_topic(site, device, Stream.RESULT), f"{unique}-s")
    box = Outbox(tmp_path / "o.db", max_bytes=10**7, device=device)
    seqs = set()
    for _ in range(1000):
        seq = box.next_seq()
        box.put(Stream.RESULT, encode(_result(site, device, seq)), seq=seq)
        seqs.add(seq)
    pub = Publisher(box, _mqtt(host, port), site=site, device=device)
    pub.start()
    assert pub.wait_connected(10)
    pub.stop(drain_timeout=30)
    assert box.depth() == 0
    assert pub.stats.acked == 1000
    box.close()
    assert sub.wait_for_seqs(seqs, 10)
