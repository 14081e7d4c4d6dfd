"""End-to-end demo of what exists so far, against the real local stack.

Run with ``make demo`` (which starts the stack first). It sends real messages
through each service and prints what came back:

1. an edge-style inference result, validated, published to Mosquitto (MQTT v5,
   QoS 1) and received by a subscriber;
2. the same message produced to Kafka (idempotent, acks=all, key = device)
   and consumed back;
3. a point written to InfluxDB and read back with Flux;
4. the bridge moving MQTT into Kafka, with a malformed payload going to the DLQ;
5. an edge node (``edgeloop edge run``) on the simulated conveyor camera and
   motor: INT8 decisions, uncertain frames and telemetry through its outbox,
   over MQTT and the bridge into Kafka, where a cloud worker re-checks the
   uploaded frames with the FP32 teacher, raises alerts, keeps dataset samples
   and writes everything to InfluxDB; ``edgeloop alerts``, ``edgeloop fleet``
   and ``edgeloop datasets snapshot`` show the result.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.devstack import Devstack
from pipeline.schemas import ModelRef, ResultV1, decode, encode, new_id, now_ns
from pipeline.topics import Stream, mqtt_topic

REPO = Path(__file__).resolve().parents[1]


def step(n: int, text: str) -> None:
    print(f"\n[{n}] {text}")


def main() -> int:
    stack = Devstack()
    if not stack.healthy():
        print("the local stack is not running: `edgeloop devstack up` (or `make demo`)")
        return 1
    run = uuid.uuid4().hex[:6]
    device = f"demo-cam-{run}"
    result = ResultV1(
        id=new_id(),
        site="plant-a",
        device=device,
        seq=1,
        ts=now_ns(),
        model=ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32),
        task="classify",
        source="cam0",
        line="line-1",
        label="scratch",
        score=0.62,
        margin=0.3,
        probs={"ok": 0.32, "scratch": 0.62, "crack": 0.06},
        route="uncertain",
        latency_ms=1.8,
    )
    payload = encode(result)

    step(1, "MQTT v5, QoS 1, through Mosquitto")
    topic = mqtt_topic("plant-a", device, Stream.RESULT)
    got = threading.Event()
    received: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, m: (received.append(m.payload), got.set())
    host, port = stack.mqtt_address
    sub.connect(host, port)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.loop_start()
    sub.subscribe(topic, qos=1)
    subscribed.wait(10)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(host, port)
    pub.loop_start()
    pub.publish(topic, payload, qos=1).wait_for_publish(5)
    ok = got.wait(10) and decode(received[0]) == result
    print(f"    {topic}: {len(payload)} bytes -> {'received and valid' if ok else 'LOST'}")
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()

    step(2, "Kafka, idempotent producer, acks=all, key = device")
    ktopic = "edgeloop.demo"
    producer = KafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    meta = producer.send(
        ktopic, key=device.encode(), value=payload, headers=[("type", b"result"), ("v", b"1")]
    ).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, consumer_timeout_ms=15000)
    tp = TopicPartition(ktopic, meta.partition)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    record = next(iter(consumer))
    consumer.close()
    print(
        f"    {ktopic} partition {meta.partition} offset {meta.offset}: "
        f"{'consumed and valid' if decode(record.value) == result else 'MISMATCH'}"
    )

    step(3, "InfluxDB 2: write a point, query it with Flux")
    creds = stack.influx_credentials()
    with InfluxDBClient(url=creds.url, token=creds.writer_token, org=creds.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=creds.bucket,
            record=Point("demo")
            .tag("device", device)
            .tag("label", result.label)
            .field("score", result.score)
            .time(result.ts, WritePrecision.NS),
        )
        tables = client.query_api().query(
            f'from(bucket: "{creds.bucket}") |> range(start: -1h) '
            f'|> filter(fn: (r) => r._measurement == "demo" and r.device == "{device}")'
        )
        values = [r.get_value() for t in tables for r in t.records]
    print(f"    bucket {creds.bucket!r}: wrote score={result.score}, read back {values}")

    step(4, "the bridge: MQTT -> Kafka, PUBACK only after Kafka acked, bad input -> DLQ")
    bridged = _bridge_demo(stack, run)
    print(f"    {bridged}")

    step(
        5,
        "an edge node: simulated camera + motor -> INT8 -> outbox -> MQTT -> bridge -> Kafka "
        "-> cloud worker (teacher, alerts, datasets) -> InfluxDB",
    )
    edge_ok, edge_summary = _edge_demo(stack, run)
    print(edge_summary)

    step(6, "stack status")
    for h in stack.status():
        print(
            f"    {h.name:<10} {'ok' if h.healthy else 'DOWN':<5} {h.version or '-':<8} {h.address}"
        )
    print(
        "\nNext: `edgeloop devstack env` prints client settings; "
        "`edgeloop devstack down` stops the stack."
    )
    return 0 if ok and values == [result.score] and edge_ok else 1


def _bridge_demo(stack: Devstack, run: str) -> str:
    from cloud_stream.bridge.config import BridgeConfig
    from cloud_stream.bridge.service import Bridge

    site = f"demo-{run}"
    results_topic, dlq_topic = f"edgeloop.demo.{run}.results", f"edgeloop.demo.{run}.dlq"
    host, port = stack.mqtt_address
    config = BridgeConfig.model_validate(
        {
            "instance": f"demo-bridge-{run}",
            "share_group": f"demo-{run}",
            "site": site,
            "topic_map": {"result": results_topic},
            "dlq_topic": dlq_topic,
            "mqtt": {"host": host, "port": port},
            "kafka": {"bootstrap_servers": [stack.kafka_bootstrap]},
            "metrics": {"enabled": False},
            "health": {"enabled": False},
        }
    )
    bridge = Bridge(config)
    bridge.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(host, port)
    pub.loop_start()
    model = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)
    for seq in range(20):
        msg = ResultV1(
            id=new_id(),
            site=site,
            device="cam-01",
            seq=seq,
            ts=now_ns(),
            model=model,
            task="classify",
            source="cam0",
            label="ok",
            score=0.95,
            route="confident",
            latency_ms=1.2,
        )
        pub.publish(f"edgeloop/v1/{site}/cam-01/result", encode(msg), qos=1).wait_for_publish(5)
    pub.publish(
        f"edgeloop/v1/{site}/cam-01/result", b'{"type": "result", "score": NaN}', qos=1
    ).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    deadline = time.monotonic() + 30
    while bridge.in_flight() and time.monotonic() < deadline:
        time.sleep(0.1)
    bridge.stop()
    counts = {}
    for topic in (results_topic, dlq_topic):
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        records = list(consumer)
        consumer.close()
        counts[topic] = records
    dlq = counts[dlq_topic]
    reason = dict(dlq[0].headers)["dlq.reason"].decode() if dlq else "-"
    return (
        f"20 results -> {len(counts[results_topic])} records on {results_topic}; "
        f"1 malformed -> {len(dlq)} on {dlq_topic} (reason: {reason})"
    )


def _edge_demo(stack: Devstack, run: str) -> tuple[bool, str]:
    """Run a real edge node process against a bridge; count what reaches Kafka."""
    import collections
    import json
    import subprocess
    import tempfile

    import yaml

    from cloud_stream.bridge.config import BridgeConfig
    from cloud_stream.bridge.service import Bridge

    site = f"demo-{run}"
    host, port = stack.mqtt_address
    topics = {s: f"edgeloop.demo.{run}.{s}" for s in ("result", "frame", "telemetry", "status")}
    bridge = Bridge(
        BridgeConfig.model_validate(
            {
                "instance": f"demo-edge-bridge-{run}",
                "share_group": f"demo-edge-{run}",
                "site": site,
                "topic_map": topics,
                "dlq_topic": f"edgeloop.demo.{run}.dlq",
                "mqtt": {"host": host, "port": port},
                "kafka": {"bootstrap_servers": [stack.kafka_bootstrap]},
                "metrics": {"enabled": False},
                "health": {"enabled": False},
            }
        )
    )
    bridge.start()
    frames = 300
    with tempfile.TemporaryDirectory() as tmp, _cloud_worker(stack, run, topics, Path(tmp)) as w:
        cfg = {
            "site": site,
            "device": "edge-01",
            "models": {
                "vision": {"package": "builtin:conveyor-int8"},
                "machine": {"package": "builtin:machine-anomaly-int8"},
            },
            "sources": [
                {
                    "type": "sim.conveyor",
                    "name": "conveyor1",
                    "line": "line1",
                    "count": frames,
                    "seed": 11,
                },
                {
                    "type": "sim.machine",
                    "name": "press1",
                    "realtime": False,
                    "duration_s": 60,
                    "faults": [{"fault": "bearing_wear", "start_s": 30, "duration_s": 20}],
                },
            ],
            "router": {"seed": 1},
            "outbox": {"path": str(Path(tmp) / "outbox.db")},
            "mqtt": {"host": host, "port": port},
            "telemetry": {"interval_s": 1},
            "metrics": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
        path = Path(tmp) / "edge.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli.main",
                "edge",
                "run",
                "--config",
                str(path),
                "--exit-when-done",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        took = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while bridge.in_flight() and time.monotonic() < deadline:
            time.sleep(0.1)
        bridge.stop()
        if proc.returncode != 0:
            return False, f"    edge node failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        cloud_ok, cloud_lines = w.report(site)
    records: dict[str, list[object]] = {}
    for stream, topic in topics.items():
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        records[stream] = list(consumer)
        consumer.close()
    results = [json.loads(r.value) for r in records["result"]]
    vision = [r for r in results if r["source"] == "conveyor1"]
    routes = collections.Counter(r["route"] for r in vision)
    labels = collections.Counter(r["label"] for r in results if r["source"] == "press1")
    frame_bytes = sum(len(r.value) for r in records["frame"])
    lines = [
        f"    {frames} frames + 60 s of motor data decided in {took:.1f} s (edge process)",
        f"    Kafka {topics['result']}: {len(results)} results; camera routes {dict(routes)}",
        f"    motor windows: {dict(labels)} (bearing wear injected at 30-50 s)",
        f"    Kafka {topics['frame']}: {len(records['frame'])} JPEG frames, {frame_bytes} bytes "
        "(upload budget 90/min per camera; this replay runs far faster than real time)",
        f"    Kafka {topics['telemetry']}: {len(records['telemetry'])} telemetry messages; "
        f"{topics['status']}: {len(records['status'])} status",
    ]
    ok = len(vision) == frames and labels.get("anomaly", 0) > 0 and cloud_ok
    return ok, "\n".join(lines + cloud_lines)


class _Worker:
    """A cloud worker process on the demo's topics, and what it produced."""

    def __init__(self, stack: Devstack, run: str, topics: dict[str, str], tmp: Path):
        from cloud_stream.worker.bench_tools import WorkerProcess

        self.stack = stack
        self.topics = {
            "results": topics["result"],
            "frames": topics["frame"],
            "telemetry": topics["telemetry"],
            "status": topics["status"],
            "verdicts": f"edgeloop.demo.{run}.verdicts",
            "alerts": f"edgeloop.demo.{run}.alerts",
            "dlq": f"edgeloop.demo.{run}.dlq",
        }
        self.datasets = tmp / "datasets"
        cfg = {
            "app_id": f"demo-cloud-{run}",
            "instance": "demo-worker",
            "kafka": {"bootstrap_servers": [stack.kafka_bootstrap]},
            "topics": self.topics,
            "state_dir": str(tmp / "state"),
            "rules_file": str(REPO / "configs" / "alerts.example.yaml"),
            "datasets": {"root": str(self.datasets)},
            "audit": {"tick_s": 1, "publish_every_s": 2},
            "logging": {"level": "WARNING"},
        }
        self.proc = WorkerProcess(cfg, tmp, "demo-worker")
        self.proc.start()
        self.proc.wait_ready(120)

    def _wait(self, deadline: float, done: Callable[[], bool]) -> None:
        while time.monotonic() < deadline and not done():
            time.sleep(0.5)

    def report(self, site: str) -> tuple[bool, list[str]]:
        """Wait until the worker caught up, then show verdicts, alerts, fleet, dataset."""
        import subprocess

        metric = self.proc.metric
        frames = _count(self.stack, self.topics["frames"])
        results = _count(self.stack, self.topics["results"])
        deadline = time.monotonic() + 60
        self._wait(deadline, lambda: metric("edgeloop_worker_verdicts_total") >= frames)
        # every result through the rules and the fleet table
        self._wait(
            deadline,
            lambda: metric("edgeloop_worker_processed_total", agent="on_results") >= results,
        )
        # then one more fleet/drift publication, with every row
        seen = metric("edgeloop_worker_derived_points_total")
        self._wait(deadline, lambda: metric("edgeloop_worker_derived_points_total") > seen)
        time.sleep(1)  # the sink's last flush
        verdicts = metric("edgeloop_worker_verdicts_total")
        lines = [
            f"    cloud worker: {int(verdicts)} teacher verdicts for {frames} uploaded frames "
            f"({int(metric('edgeloop_worker_verdicts_total', agree='true'))} agree with the "
            f"edge), {int(metric('edgeloop_worker_dataset_samples_total'))} dataset samples, "
            f"{int(metric('edgeloop_worker_sink_points_total'))} InfluxDB points",
        ]
        for cmd in (
            ["alerts", "--since", "15m", "--site", site],
            ["fleet", "--site", site],
            ["datasets", "snapshot", "--root", str(self.datasets), "--note", "demo"],
        ):
            out = subprocess.run(
                [sys.executable, "-m", "pipeline.cli.main", *cmd],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            lines.append(f"    $ edgeloop {' '.join(cmd)}")
            lines += [f"      {line}" for line in (out.stdout or out.stderr).splitlines()[:12]]
        return verdicts >= frames, lines


@contextlib.contextmanager
def _cloud_worker(
    stack: Devstack, run: str, topics: dict[str, str], tmp: Path
) -> Iterator[_Worker]:
    worker = _Worker(stack, run, topics, tmp)
    try:
        yield worker
    finally:
        worker.proc.stop()


def _count(stack: Devstack, topic: str) -> int:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    n = sum(1 for _ in consumer)
    consumer.close()
    return n


if __name__ == "__main__":
    sys.exit(main())
