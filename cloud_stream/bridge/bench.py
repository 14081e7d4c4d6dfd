"""``edgeloop bench bridge``: the bridge against a pipe of standard tools, same run.

1. Throughput: N result messages (about 300 bytes, 50 devices, QoS 1) published as
   fast as the stack takes them, through the bridge (a real ``edgeloop bridge run``
   process) into Kafka, then read back and every id checked.
2. Baseline: the same messages through ``mosquitto_sub | kcat -P``, which has no
   delivery guarantee (it acknowledges the broker before Kafka has anything).
3. Latency at a steady 5,000 msg/s: publish time to Kafka append time (topics use
   ``LogAppendTime``, so the broker stamps each record).
4. The bridge's resident memory at the start and end of the steady phase.
"""

from __future__ import annotations

__all__ = ["run"]

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline.devstack import Devstack
from pipeline.errors import EdgeloopError
from pipeline.schemas import ModelRef, ResultV1, encode


def _say(msg: str) -> None:
    print(f"[bench bridge] {msg}", file=sys.stderr, flush=True)


_MODEL = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)


def _result(site: str, device: str, seq: int, ts: int) -> ResultV1:
    """A typical confident result (about 360 bytes encoded)."""
    return ResultV1(
        id=uuid.uuid4().hex,
        site=site,
        device=device,
        seq=seq,
        ts=ts,
        model=_MODEL,
        task="classify",
        source="cam0",
        label="ok",
        score=0.97,
        route="confident",
        latency_ms=1.1,
    )


def _messages(site: str, n: int, devices: int = 50) -> list[tuple[str, str, bytes]]:
    out = []
    base = time.time_ns()
    for i in range(n):
        device = f"dev-{i % devices:02d}"
        msg = _result(site, device, i // devices, base + i)
        out.append((msg.id, f"edgeloop/v1/{site}/{device}/result", encode(msg)))
    return out


class _ToolPublisher:
    """Publishes through ``mosquitto_pub -l`` processes, one per device topic.

    The harness must not compete with what it measures: a Python publisher costs
    about one core at these rates on a 2-core machine, mosquitto_pub a fraction.
    """

    def __init__(self, host: str, port: int, topics: list[str]):
        binary = shutil.which("mosquitto_pub")
        if binary is None:
            raise EdgeloopError("mosquitto_pub not found", hint="apt-get install mosquitto-clients")
        self.procs = {
            t: subprocess.Popen(
                [binary, "-h", host, "-p", str(port), "-q", "1", "-V", "mqttv5", "-l", "-t", t],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for t in topics
        }

    def send(self, topic: str, payload: bytes) -> None:
        stdin = self.procs[topic].stdin
        assert stdin is not None
        stdin.write(payload + b"\n")

    def flush(self) -> None:
        for p in self.procs.values():
            assert p.stdin is not None
            p.stdin.flush()

    def close(self, timeout: float = 120) -> None:
        """Close the inputs and wait until every message is published (PUBACKed)."""
        for p in self.procs.values():
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs.values():
            p.wait(timeout)


def _create_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=4,
                    replication_factor=1,
                    topic_configs={"message.timestamp.type": "LogAppendTime"},
                )
            ]
        )
    finally:
        admin.close()


def _read(
    bootstrap: str, topic: str, expect: int, timeout: float, idle_s: float = 3.0
) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=300, max_records=10_000).values():
                records.extend(recs)
                last_new = time.monotonic()
            if len(records) >= expect and time.monotonic() - last_new > idle_s:
                break
            if len(records) < expect and time.monotonic() - last_new > 20:
                break  # nothing for 20 s: the rest is lost
    finally:
        consumer.close()
    return records


def _ids(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records if r.value]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_bridge(stack: Devstack, site: str, topic: str, work: Path) -> tuple[Any, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host, mqtt_port = stack.mqtt_address
    config = {
        "instance": f"bench-{site}",
        "share_group": f"bench-{site}",
        "site": site,
        "topic_map": {"result": topic},
        "dlq_topic": f"{topic}.dlq",
        "mqtt": {"host": host, "port": mqtt_port, "receive_maximum": 5000},
        "kafka": {"bootstrap_servers": [stack.kafka_bootstrap]},
        "metrics": {"port": port},
        "health": {"port": port},
        "logging": {"level": "WARNING"},
    }
    path = work / "bridge.yaml"
    path.write_text(yaml.safe_dump(config))
    with (work / "bridge.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.main", "bridge", "run", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EdgeloopError(f"bridge exited: {(work / 'bridge.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if json.loads(r.read())["ok"]:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    raise EdgeloopError("bridge did not become healthy")


def _pipe_tools() -> tuple[str, str]:
    sub, kcat = shutil.which("mosquitto_sub"), shutil.which("kcat")
    if sub is None or kcat is None:
        raise EdgeloopError(
            "the baseline needs mosquitto_sub and kcat",
            hint="apt-get install -y mosquitto-clients kcat",
        )
    return sub, kcat


def _throughput(records: list[Any], start_ns: int, n: int) -> tuple[float, int, int]:
    ids = _ids(records)
    unique = len(set(ids))
    last_ms = max((r.timestamp for r in records), default=0)
    seconds = max(1e-3, last_ms / 1000 - start_ns / 1e9)
    return unique / seconds, n - unique, len(ids) - unique


def _topics(site: str, devices: int = 50) -> list[str]:
    return [f"edgeloop/v1/{site}/dev-{d:02d}/result" for d in range(devices)]


def _blast(host: str, port: int, site: str, items: list[tuple[str, str, bytes]]) -> int:
    """Publish everything as fast as the broker takes it; return the start time (ns)."""
    pub = _ToolPublisher(host, port, _topics(site))
    t0 = time.time_ns()
    for _, topic, payload in items:
        pub.send(topic, payload)
    pub.close()
    return t0


def _steady(host: str, port: int, site: str, rate: int, seconds: float) -> dict[str, int]:
    """Publish at ``rate`` for ``seconds``; return {message id: publish time ns}."""
    sent_ts: dict[str, int] = {}
    pub = _ToolPublisher(host, port, _topics(site))
    tick = 0.005
    per_tick = max(1, int(rate * tick))
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        for _ in range(per_tick):
            device = f"dev-{i % 50:02d}"
            ts = time.time_ns()
            msg = _result(site, device, 10**9 + i, ts)
            sent_ts[msg.id] = ts
            pub.send(f"edgeloop/v1/{site}/{device}/result", encode(msg))
            i += 1
        pub.flush()
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    pub.close()
    return sent_ts


def _latencies(records: list[Any], sent_ts: dict[str, int]) -> tuple[list[float], int]:
    """Append time minus publish time (ms) of the steady messages, and how many are lost."""
    lat, seen = [], set()
    for r in records:
        msg_id = json.loads(r.value)["id"]
        if msg_id in sent_ts:
            seen.add(msg_id)
            lat.append(r.timestamp - sent_ts[msg_id] / 1e6)
    return sorted(lat), len(sent_ts) - len(seen)


def _bridge_phases(
    stack: Devstack, tag: str, n: int, steady_s: float, rate: int, work: Path
) -> dict[str, Any]:
    bootstrap = stack.kafka_bootstrap
    topic = f"bench.{tag}.bridge"
    _create_topic(bootstrap, topic)
    site = f"b{tag}"
    proc, _port = _start_bridge(stack, site, topic, work)
    host, mqtt_port = stack.mqtt_address
    try:
        items = _messages(site, n)
        _say(f"publishing {n} messages through the bridge")
        t0 = _blast(host, mqtt_port, site, items)
        records = _read(bootstrap, topic, n, timeout=300)
        rate_bridge, lost, dups = _throughput(records, t0, n)
        _say(f"steady {rate} msg/s for {steady_s:.0f}s")
        rss_start = _rss_mb(proc.pid)
        sent_ts = _steady(host, mqtt_port, site, rate, steady_s)
        rss_end = _rss_mb(proc.pid)
        lat, steady_lost = _latencies(
            _read(bootstrap, topic, n + len(sent_ts), timeout=120), sent_ts
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "payload_bytes": round(sum(len(p) for _, _, p in items) / n),
        "msgs_per_s": round(rate_bridge),
        "lost": lost + steady_lost,
        "duplicates": dups,
        "steady_rate": rate,
        "steady_sent": len(sent_ts),
        "p50_ms": round(lat[len(lat) // 2], 2) if lat else None,
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2) if lat else None,
        "bridge_rss_start_mb": round(rss_start, 1),
        "bridge_rss_mb": round(rss_end, 1),
    }


def _pipe_phase(stack: Devstack, tag: str, n: int) -> dict[str, Any]:
    sub_bin, kcat_bin = _pipe_tools()
    host, mqtt_port = stack.mqtt_address
    bootstrap = stack.kafka_bootstrap
    topic = f"bench.{tag}.pipe"
    _create_topic(bootstrap, topic)
    site = f"p{tag}"
    _say("baseline: mosquitto_sub | kcat -P")
    command = (
        f"{sub_bin} -h {host} -p {mqtt_port} -q 1 -V mqttv5 -t 'edgeloop/v1/{site}/+/result' "
        f"| {kcat_bin} -P -b {bootstrap} -t {topic}"
    )
    pipe = subprocess.Popen(  # noqa: S602 - a fixed pipe of two tools, our own arguments
        command,
        shell=True,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)  # let mosquitto_sub subscribe
        t0 = _blast(host, mqtt_port, site, _messages(site, n))
        rate_pipe, pipe_lost, _ = _throughput(_read(bootstrap, topic, n, timeout=300), t0, n)
    finally:
        os.killpg(pipe.pid, signal.SIGTERM)
        pipe.wait(10)
    return {"baseline_msgs_per_s": round(rate_pipe), "baseline_lost": pipe_lost}


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return the figures."""
    stack = Devstack()
    if not stack.healthy():
        raise EdgeloopError("the local stack is not running", hint="edgeloop devstack up")
    _pipe_tools()
    n = 5_000 if quick else 50_000
    steady_s = 3.0 if quick else 20.0
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    try:
        report: dict[str, Any] = {"bench": "bridge", "messages": n}
        report.update(_bridge_phases(stack, tag, n, steady_s, 5_000, work))
        report.update(_pipe_phase(stack, tag, n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["ratio_vs_baseline"] = round(
        report["msgs_per_s"] / max(1, report["baseline_msgs_per_s"]), 3
    )
    return report
