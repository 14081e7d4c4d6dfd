"""``edgeloop bench bridge``: the bridge against a pipe of standard tools, same run.

Both run side by side: the bridge (a real ``edgeloop bridge run`` process, with
the default ``workers``; ``EDGELOOP_BENCH_WORKERS`` overrides it) and the
baseline ``mosquitto_sub | kcat -P``, which has no delivery guarantee (it
acknowledges the broker before Kafka has anything). Each has its own site and
topic.

1. Warm-up: 2,000 messages through each, uncounted, so Kafka's JIT, the new
   topics and the fresh bridge are warm when the clock starts.
2. Throughput, in rounds (3; ``--quick``: 1): N result messages (about 360 bytes,
   50 devices, QoS 1) published as fast as the stack takes them, first through
   the bridge, then through the pipe, and every id checked in Kafka. Rounds
   alternate so that a busy minute on a shared machine hits both; the report
   gives the median rate of each and the median of the per-round ratios.
3. Latency at a steady 5,000 msg/s, through each: publish time to Kafka append
   time (topics use ``LogAppendTime``, so the broker stamps each record). The
   messages are built before the phase (the harness must not compete for the CPU
   while it paces), and a short warm-up at the same rate is left out. The pipe's
   figures show what this machine's load does to latency without the bridge.
4. The bridge's resident memory (all its processes), sampled every second of the
   steady phase: at its start, its largest, and at its end.

While a pipe is measured the harness only polls end offsets; it reads and checks
the records afterwards, so it does not compete for the CPU either.
"""

from __future__ import annotations

__all__ = ["run"]

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from cloud_stream.bridge.bench_tools import (
    RssSampler,
    ToolPublisher,
    TopicReader,
    cpu_s,
    create_topics,
    free_ports,
    healthy,
    ids_of,
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
"""Messages through each pipe before the clock starts (Kafka's JIT, the new topics,
the fresh bridge's caches); not counted."""


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
    for r, msg_id in zip(records, ids_of(records), strict=True):
        if msg_id in sent_ts:
            seen.add(msg_id)
            lat.append(r.timestamp - sent_ts[msg_id] / 1e6)
    return sorted(lat), len(sent_ts) - len(seen)


class _Lane:
    """One pipe under test: its MQTT site, its Kafka topic and a reader of that topic.

    Args:
        stack: The local stack.
        name: ``bridge`` or ``pipe``.
        site: The site its messages are published under (only this lane subscribes).
        topic: Where its records land.
        pid: The process whose CPU time is measured (the bridge), if any.
    """

    def __init__(self, stack: Devstack, name: str, site: str, topic: str, pid: int | None):
        self.stack, self.name, self.site, self.topic, self.pid = stack, name, site, topic, pid
        self.reader = TopicReader(stack.kafka_bootstrap, topic)
        self.held = 0  # records in the topic so far

    def warm_up(self) -> None:
        """Send :data:`_WARM_UP` messages and wait for them, uncounted.

        The pipe of tools may lose a few (it has no guarantee): what the topic then
        holds is what the rounds count on.
        """
        host, port = self.stack.mqtt_address
        _blast(host, port, self.site, _messages(self.site, _WARM_UP, first_seq=2 * 10**9))
        self.held = wait_for_records(
            self.stack.kafka_bootstrap, self.topic, _WARM_UP * 99 // 100, timeout=120, idle_s=1.0
        )
        self.reader.read(self.held, timeout=60)

    def blast(self, n: int) -> dict[str, float]:
        """Publish ``n`` fresh messages as fast as the stack takes them; count them in Kafka."""
        host, port = self.stack.mqtt_address
        items = _messages(self.site, n)
        cpu_start = cpu_s(self.pid) if self.pid else 0.0
        t0 = _blast(host, port, self.site, items)
        total = wait_for_records(self.stack.kafka_bootstrap, self.topic, self.held + n, timeout=300)
        cpu = cpu_s(self.pid) - cpu_start if self.pid else 0.0
        records = self.reader.read(total - self.held, timeout=60)
        self.held = total
        rate, lost, dups = _throughput(records, t0, {m for m, _, _ in items})
        payload = sum(len(p) for _, _, p in items) / n
        return {"rate": rate, "lost": lost, "dups": dups, "cpu_s": cpu, "payload": payload}

    def steady(self, rate: int, seconds: float, warmup_s: float) -> dict[str, Any]:
        """Publish at a steady ``rate``; latencies of the messages after ``warmup_s``."""
        host, port = self.stack.mqtt_address
        rss = RssSampler(self.pid) if self.pid else None
        with rss or contextlib.nullcontext():
            sent_ts, achieved = _steady(host, port, self.site, rate, seconds, warmup_s)
        expect = len(sent_ts) + int(rate * warmup_s)
        total = wait_for_records(
            self.stack.kafka_bootstrap, self.topic, self.held + expect, timeout=120, idle_s=1.0
        )
        records = self.reader.read(total - self.held, timeout=60)
        self.held = total
        lat, lost = _latencies(records, sent_ts)
        out: dict[str, Any] = {"lat": lat, "lost": lost, "sent": sent_ts, "achieved": achieved}
        if rss is not None:
            out["rss"] = rss.samples
        return out


def _start_pipe(stack: Devstack, site: str, topic: str) -> subprocess.Popen[bytes]:
    sub_bin, kcat_bin = _pipe_tools()
    host, mqtt_port = stack.mqtt_address
    command = (
        f"{sub_bin} -h {host} -p {mqtt_port} -q 1 -V mqttv5 -t 'edgeloop/v1/{site}/+/result' "
        f"| {kcat_bin} -P -b {stack.kafka_bootstrap} -t {topic}"
    )
    pipe = subprocess.Popen(  # noqa: S602 - a fixed pipe of two tools, our own arguments
        command,
        shell=True,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # let mosquitto_sub subscribe
    return pipe


def _measure(
    stack: Devstack, tag: str, n: int, rounds: int, steady_s: float, work: Path, workers: int
) -> dict[str, Any]:
    """Both pipes side by side: warm-up, ``rounds`` alternating blasts, then steady phases."""
    rate = 5_000
    bridge_topic, pipe_topic = f"bench.{tag}.bridge", f"bench.{tag}.pipe"
    create_topics(stack.kafka_bootstrap, [bridge_topic, pipe_topic])
    proc, _port = _start_bridge(stack, f"b{tag}", bridge_topic, work, workers)
    pipe = None
    lanes: list[_Lane] = []
    try:
        _say("baseline alongside: mosquitto_sub | kcat -P")
        pipe = _start_pipe(stack, f"p{tag}", pipe_topic)
        bridge = _Lane(stack, "bridge", f"b{tag}", bridge_topic, proc.pid)
        tools = _Lane(stack, "pipe", f"p{tag}", pipe_topic, None)
        lanes = [bridge, tools]
        for lane in lanes:
            lane.warm_up()
        blasts: dict[str, list[dict[str, float]]] = {"bridge": [], "pipe": []}
        for i in range(rounds):
            # Alternating, so that a busy minute on this shared machine hits both.
            for lane in (bridge, tools):
                _say(f"round {i + 1}/{rounds}: {n} messages through the {lane.name}")
                blasts[lane.name].append(lane.blast(n))
        _say(f"steady {rate} msg/s for {steady_s:.0f}s, through each")
        b_steady = bridge.steady(rate, steady_s, 1.0)
        # The same steady phase: what this machine's load does to latency without the bridge.
        p_steady = tools.steady(rate, steady_s, 1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if pipe is not None:
            os.killpg(pipe.pid, signal.SIGTERM)
            pipe.wait(10)
        for lane in lanes:
            lane.reader.close()
    ratios = [
        b["rate"] / max(1.0, p["rate"])
        for b, p in zip(blasts["bridge"], blasts["pipe"], strict=True)
    ]
    p50, p99 = _percentiles(b_steady["lat"])
    base_p50, base_p99 = _percentiles(p_steady["lat"])
    rss = b_steady["rss"]
    return {
        "rounds": rounds,
        "payload_bytes": round(blasts["bridge"][0]["payload"]),
        "msgs_per_s": round(median([b["rate"] for b in blasts["bridge"]])),
        "lost": sum(int(b["lost"]) for b in blasts["bridge"]) + b_steady["lost"],
        "duplicates": sum(int(b["dups"]) for b in blasts["bridge"]),
        "workers": workers,
        # CPU time per message: comparable across runs even when the machine is busy.
        "bridge_cpu_us_per_msg": round(
            sum(b["cpu_s"] for b in blasts["bridge"]) / (n * rounds) * 1e6, 1
        ),
        "steady_rate": rate,
        "steady_achieved_rate": round(b_steady["achieved"]),
        "steady_sent": len(b_steady["sent"]),
        "p50_ms": p50,
        "p99_ms": p99,
        # Sampled every second of the steady phase: flat memory means max ~ start ~ end.
        "bridge_rss_start_mb": round(rss[0], 1),
        "bridge_rss_max_mb": round(max(rss), 1),
        "bridge_rss_mb": round(rss[-1], 1),
        "baseline_msgs_per_s": round(median([p["rate"] for p in blasts["pipe"]])),
        "baseline_lost": sum(int(p["lost"]) for p in blasts["pipe"]),
        "baseline_p50_ms": base_p50,
        "baseline_p99_ms": base_p99,
        "round_msgs_per_s": [round(b["rate"]) for b in blasts["bridge"]],
        "round_baseline_msgs_per_s": [round(p["rate"]) for p in blasts["pipe"]],
        "round_ratios": [round(r, 3) for r in ratios],
        # The median of the per-round ratios: each compares two blasts a few seconds apart.
        "ratio_vs_baseline": round(median(ratios), 3),
    }


def _percentiles(lat: list[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of sorted latencies (ms), rounded; None when there are none."""
    if not lat:
        return None, None
    return round(lat[len(lat) // 2], 2), round(lat[max(0, int(len(lat) * 0.99) - 1)], 2)


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
        quick: A short run (one round of 5,000 messages, 3 s steady phase).
        workers: Bridge worker processes; :func:`default_workers` when absent.
    """
    stack = Devstack()
    if not stack.healthy():
        raise EdgeloopError("the local stack is not running", hint="edgeloop devstack up")
    _pipe_tools()
    n = 5_000 if quick else 50_000
    rounds = 1 if quick else 3
    steady_s = 3.0 if quick else 20.0
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    try:
        report: dict[str, Any] = {"bench": "bridge", "messages": n}
        workers = default_workers() if workers is None else workers
        report.update(_measure(stack, tag, n, rounds, steady_s, work, workers))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_run_topics(stack, tag)
    return report
