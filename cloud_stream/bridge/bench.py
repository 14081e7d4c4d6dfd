"""``edgeloop bench bridge``: the bridge against a pipe of standard tools, same run.

1. Throughput: N result messages (about 300 bytes, 50 devices, QoS 1) published as
   fast as the stack takes them, through the bridge (a real ``edgeloop bridge run``
   process) into Kafka, then read back and every id checked.
   A warm-up of 2,000 messages goes through first, uncounted, so Kafka's JIT, the
   new topic and the fresh bridge are warm when the clock starts.
2. Baseline: the same messages through ``mosquitto_sub | kcat -P``, which has no
   delivery guarantee (it acknowledges the broker before Kafka has anything),
   after the same warm-up.
3. Latency at a steady 5,000 msg/s: publish time to Kafka append time (topics use
   ``LogAppendTime``, so the broker stamps each record). The messages are built
   before the phase (the harness must not compete for the CPU while it paces),
   and a short warm-up at the same rate is left out of the figures.
4. The bridge's resident memory (all its processes), sampled every second of the
   steady phase: at its start, its largest, and at its end.

The bridge runs as a user would deploy it (``edgeloop bridge run``, with the
default ``workers``; ``EDGELOOP_BENCH_WORKERS`` overrides it). The baseline pipe
goes through the same two phases, so the machine's own latency is in the report.
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
import uuid
from pathlib import Path
from typing import Any

import yaml

from cloud_stream.bridge.bench_tools import (
    RssSampler,
    ToolPublisher,
    cpu_s,
    create_topics,
    free_ports,
    healthy,
    ids_of,
    read_topic,
    wait_for_records,
)
from cloud_stream.bridge.config import BridgeConfig
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


def _messages(
    site: str, n: int, devices: int = 50, first_seq: int = 0
) -> list[tuple[str, str, bytes]]:
    out = []
    base = time.time_ns()
    for i in range(n):
        device = f"dev-{i % devices:02d}"
        msg = _result(site, device, first_seq + i // devices, base + i)
        out.append((msg.id, f"edgeloop/v1/{site}/{device}/result", encode(msg)))
    return out


def _start_bridge(
    stack: Devstack, site: str, topic: str, work: Path, workers: int = 1
) -> tuple[Any, int]:
    port = free_ports(workers)
    host, mqtt_port = stack.mqtt_address
    config = {
        "instance": f"bench-{site}",
        "share_group": f"bench-{site}",
        "site": site,
        "workers": workers,
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
    waiting = list(range(port, port + workers))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EdgeloopError(f"bridge exited: {(work / 'bridge.log').read_text()[-2000:]}")
        waiting = [p for p in waiting if not healthy(p)]
        if not waiting:
            return proc, port
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


def _throughput(records: list[Any], start_ns: int, expected: set[str]) -> tuple[float, int, int]:
    """Messages a second from ``start_ns`` to the last append, lost and duplicated.

    Only the records of ``expected`` count (the topic also holds the warm-up).
    """
    ids, last_ms = [], 0
    for record, msg_id in zip(records, ids_of(records), strict=True):
        if msg_id in expected:
            ids.append(msg_id)
            last_ms = max(last_ms, record.timestamp)
    unique = len(set(ids))
    seconds = max(1e-3, last_ms / 1000 - start_ns / 1e9)
    return unique / seconds, len(expected) - unique, len(ids) - unique


_WARM_UP = 2_000


def _warm_up(host: str, port: int, site: str, bootstrap: str, topic: str) -> int:
    """Send a few thousand messages through the pipe and wait for them, uncounted.

    Both pipes get the same: Kafka's JIT, the new topic's partitions and a fresh
    bridge's caches are warm before the clock starts. Returns the records the
    topic then holds (the pipe of tools may lose a few: it has no guarantee).
    """
    _blast(host, port, site, _messages(site, _WARM_UP, first_seq=2 * 10**9))
    return wait_for_records(bootstrap, topic, _WARM_UP * 99 // 100, timeout=120, idle_s=1.0)


def _topics(site: str, devices: int = 50) -> list[str]:
    return [f"edgeloop/v1/{site}/dev-{d:02d}/result" for d in range(devices)]


def _blast(host: str, port: int, site: str, items: list[tuple[str, str, bytes]]) -> int:
    """Publish everything as fast as the broker takes it; return the start time (ns)."""
    pub = ToolPublisher(host, port, _topics(site))
    t0 = time.time_ns()
    for _, topic, payload in items:
        pub.send(topic, payload)
    pub.close()
    return t0


def _steady(
    host: str, port: int, site: str, rate: int, seconds: float, warmup_s: float
) -> tuple[dict[str, int], float]:
    """Publish at ``rate`` for ``warmup_s + seconds``.

    Returns:
        {message id: publish time ns} of the messages after the warm-up, and the
        rate the publisher achieved over the measured part.
    """
    warm = int(rate * warmup_s)
    items = _messages(site, warm + int(rate * seconds), first_seq=10**9)
    sent_ts: dict[str, int] = {}
    pub = ToolPublisher(host, port, _topics(site))
    per_tick = max(1, rate // 200)  # a batch every 5 ms
    t0 = time.monotonic()
    measured_from = t0 + warmup_s
    for start in range(0, len(items), per_tick):
        now_ns = time.time_ns()
        for msg_id, topic, payload in items[start : start + per_tick]:
            if start >= warm:
                sent_ts[msg_id] = now_ns
            pub.send(topic, payload)
        pub.flush()
        if start + per_tick == warm:
            measured_from = time.monotonic()
        delay = t0 + (start + per_tick) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    achieved = len(sent_ts) / max(1e-3, time.monotonic() - measured_from)
    pub.close()
    return sent_ts, achieved


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
    stack: Devstack, tag: str, n: int, steady_s: float, rate: int, work: Path, workers: int
) -> dict[str, Any]:
    bootstrap = stack.kafka_bootstrap
    topic = f"bench.{tag}.bridge"
    create_topics(bootstrap, [topic])
    site = f"b{tag}"
    proc, _port = _start_bridge(stack, site, topic, work, workers)
    host, mqtt_port = stack.mqtt_address
    try:
        items = _messages(site, n)
        warm = _warm_up(host, mqtt_port, site, bootstrap, topic)
        _say(f"publishing {n} messages through the bridge (workers: {workers})")
        cpu_start = cpu_s(proc.pid)
        t0 = _blast(host, mqtt_port, site, items)
        wait_for_records(bootstrap, topic, warm + n, timeout=300)
        cpu_used = cpu_s(proc.pid) - cpu_start
        records = read_topic(bootstrap, topic, warm + n, timeout=60)
        rate_bridge, lost, dups = _throughput(records, t0, {m for m, _, _ in items})
        _say(f"steady {rate} msg/s for {steady_s:.0f}s")
        warmup_s = 1.0
        with RssSampler(proc.pid) as rss:
            sent_ts, achieved = _steady(host, mqtt_port, site, rate, steady_s, warmup_s)
        expect = warm + n + len(sent_ts) + int(rate * warmup_s)
        lat, steady_lost = _latencies(read_topic(bootstrap, topic, expect, timeout=120), sent_ts)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    p50, p99 = _percentiles(lat)
    return {
        "payload_bytes": round(sum(len(p) for _, _, p in items) / n),
        "msgs_per_s": round(rate_bridge),
        "lost": lost + steady_lost,
        "duplicates": dups,
        "workers": workers,
        # CPU time per message: comparable across runs even when the machine is busy.
        "bridge_cpu_us_per_msg": round(cpu_used / n * 1e6, 1),
        "steady_rate": rate,
        "steady_achieved_rate": round(achieved),
        "steady_sent": len(sent_ts),
        "p50_ms": p50,
        "p99_ms": p99,
        # Sampled every second of the steady phase: flat memory means max ~ start ~ end.
        "bridge_rss_start_mb": round(rss.samples[0], 1),
        "bridge_rss_max_mb": round(max(rss.samples), 1),
        "bridge_rss_mb": round(rss.samples[-1], 1),
    }


def _percentiles(lat: list[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of sorted latencies (ms), rounded; None when there are none."""
    if not lat:
        return None, None
    return round(lat[len(lat) // 2], 2), round(lat[max(0, int(len(lat) * 0.99) - 1)], 2)


def _pipe_phase(stack: Devstack, tag: str, n: int, steady_s: float, rate: int) -> dict[str, Any]:
    sub_bin, kcat_bin = _pipe_tools()
    host, mqtt_port = stack.mqtt_address
    bootstrap = stack.kafka_bootstrap
    topic = f"bench.{tag}.pipe"
    create_topics(bootstrap, [topic])
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
        warm = _warm_up(host, mqtt_port, site, bootstrap, topic)
        items = _messages(site, n)
        t0 = _blast(host, mqtt_port, site, items)
        wait_for_records(bootstrap, topic, warm + n, timeout=300)
        records = read_topic(bootstrap, topic, warm + n, timeout=60)
        rate_pipe, pipe_lost, _ = _throughput(records, t0, {m for m, _, _ in items})
        # The same steady phase: what this machine's load does to latency without the bridge.
        sent_ts, _ = _steady(host, mqtt_port, site, rate, steady_s, 1.0)
        expect = warm + n + len(sent_ts) + rate
        lat, _ = _latencies(read_topic(bootstrap, topic, expect, timeout=60), sent_ts)
    finally:
        os.killpg(pipe.pid, signal.SIGTERM)
        pipe.wait(10)
    p50, p99 = _percentiles(lat)
    return {
        "baseline_msgs_per_s": round(rate_pipe),
        "baseline_lost": pipe_lost,
        "baseline_p50_ms": p50,
        "baseline_p99_ms": p99,
    }


def default_workers() -> int:
    """Bridge workers as deployed: the config default (1), or ``EDGELOOP_BENCH_WORKERS``."""
    env = os.environ.get("EDGELOOP_BENCH_WORKERS")
    if env:
        return max(1, int(env))
    return int(BridgeConfig.model_fields["workers"].default)


def drop_run_topics(stack: Devstack, tag: str) -> None:
    """Delete a run's Kafka topics (names carry its tag): stale topics slow every client."""
    from cloud_stream.kafka_conn import delete_topics, list_topics
    from pipeline.config.base import KafkaConfig

    kafka = KafkaConfig(bootstrap_servers=[stack.kafka_bootstrap])
    delete_topics(kafka, {t for t in list_topics(kafka) if tag in t})


def run(quick: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Run the benchmark and return the figures.

    Args:
        quick: A short run (5,000 messages, 3 s steady phase).
        workers: Bridge worker processes; :func:`default_workers` when absent.
    """
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
        workers = default_workers() if workers is None else workers
        report.update(_bridge_phases(stack, tag, n, steady_s, 5_000, work, workers))
        report.update(_pipe_phase(stack, tag, n, steady_s, 5_000))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_run_topics(stack, tag)
    report["ratio_vs_baseline"] = round(
        report["msgs_per_s"] / max(1, report["baseline_msgs_per_s"]), 3
    )
    return report
