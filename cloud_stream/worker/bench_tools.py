"""Parts of ``edgeloop bench cloud``: worker processes, test messages, InfluxDB helpers.

Everything here is harness: it builds the inputs the benchmark feeds the worker
(frames as the bridge would produce them, results as edge nodes would send
them) and watches the worker from outside (its /metrics, Kafka, InfluxDB), so
the worker runs exactly as deployed.
"""

from __future__ import annotations

__all__ = [
    "AlertWatcher",
    "Buckets",
    "Frame",
    "WorkerProcess",
    "anomaly_result",
    "conveyor_frames",
    "frame_record",
    "metric_total",
    "mqtt_client",
    "produce",
    "sink_results",
]

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cloud_stream.bridge.bench_tools import free_ports
from pipeline.devstack import InfluxCredentials
from pipeline.errors import EdgeloopError
from pipeline.modelpkg import builtin_package
from pipeline.schemas import AnomalySummary, FrameMetaV1, ResultV1, new_id, to_properties

Headers = list[tuple[str, bytes]]
KafkaItem = tuple[bytes, bytes, Headers]  # key, value, headers
_CLI = (sys.executable, "-m", "pipeline.cli.main")


# --- the worker as a child process ------------------------------------------------------
class WorkerProcess:
    """``edgeloop cloud worker --config FILE`` as a child process, with its /metrics.

    Args:
        config: The worker config as a dict (``metrics.port`` is set here).
        work: Folder for its YAML and log.
        name: For file names and messages.
    """

    def __init__(self, config: dict[str, Any], work: Path, name: str):
        self.name = name
        self.port = free_ports(1)
        self.config = {**config, "metrics": {"enabled": True, "port": self.port}}
        self.path = work / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(self.config))
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Launch it; returns at once (Faust takes 10-20 s to join its group)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*_CLI, "cloud", "worker", "--config", str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started_at = time.monotonic()

    def check_alive(self) -> None:
        """Raise with the end of its log if it exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise EdgeloopError(f"worker {self.name} exited ({self.proc.returncode}):\n{tail}")

    def metrics(self) -> str:
        """Its Prometheus text ('' while the status server is not up yet)."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def wait_metrics(self, timeout: float = 90) -> None:
        """Wait until /metrics answers (the worker checked its config and is starting Faust)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.metrics():
                return
            time.sleep(0.2)
        raise EdgeloopError(f"worker {self.name} did not serve /metrics within {timeout:.0f} s")

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until /healthz says ready (Faust has its partitions and its tables)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if json.loads(resp.read()).get("ok"):
                        return
            except OSError:  # not up yet, or 503 while it joins its group
                pass
            time.sleep(0.3)
        raise EdgeloopError(f"worker {self.name} not ready within {timeout:.0f} s; see {self.log}")

    def metric(self, name: str, **labels: str) -> float:
        """One metric's total now (see :func:`metric_total`)."""
        return metric_total(self.metrics(), name, **labels)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in Prometheus text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# --- frames ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """One encoded conveyor frame and the label it was rendered with."""

    label: str
    jpeg: bytes
    phash: str
    width: int
    height: int


def _phash(gray: Any) -> str:
    """The 64-bit DCT perceptual hash the edge computes (``FrameMetaV1.phash``)."""
    import cv2
    import numpy as np

    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(small.astype(np.float32))[:8, :8].reshape(-1)
    bits = coeffs > np.median(coeffs[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def conveyor_frames(n: int, seed: int, work: Path, size: int = 320) -> list[Frame]:
    """``n`` simulated conveyor frames as JPEG (quality 85, what the edge uploads).

    The images come from ``edgeloop edge simulate conveyor`` in a child process
    (the cloud side does not import the edge package).
    """
    import cv2

    out = work / f"frames-{seed}"
    args = ["--out", str(out), "--count", str(n), "--size", str(size), "--seed", str(seed)]
    subprocess.run(
        [*_CLI, "edge", "simulate", "conveyor", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    frames = []
    for path in sorted(out.glob("*/*/*.png"), key=lambda p: p.name):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EdgeloopError(f"simulated frame {path} could not be read")
        ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 85])
        if not ok:
            raise EdgeloopError(f"simulated frame {path} could not be encoded")
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = image.shape[:2]
        frames.append(Frame(path.parent.name, buf.tobytes(), _phash(gray), w, h))
    if len(frames) != n:
        raise EdgeloopError(f"the simulator wrote {len(frames)} frames, not {n}")
    return frames


def frame_record(site: str, index: int, frame: Frame, labels: Sequence[str]) -> KafkaItem:
    """A frame as the bridge puts it on the frames topic (JPEG value, metadata headers).

    Uploads are mostly uncertain decisions (one in eight is an audit sample of a
    confident one); one in five carries a wrong edge label, so the teacher disagrees.
    """
    device = f"cam-{index % 8:02d}"
    audit = index % 8 == 7
    label = frame.label if index % 5 else labels[(labels.index(frame.label) + 1) % len(labels)]
    ts = time.time_ns()
    meta = FrameMetaV1(
        id=new_id(),
        site=site,
        device=device,
        seq=index // 8,
        ts=ts,
        model=builtin_package("conveyor-int8").ref,
        source="cam0",
        line=f"line-{index % 8 // 2}",
        result_id=new_id(),
        reason="audit" if audit else "uncertain",
        label=label,
        score=0.99 if audit else round(0.5 + 0.4 * ((index * 37) % 100) / 100, 5),
        width=frame.width,
        height=frame.height,
        size=len(frame.jpeg),
        phash=frame.phash,
    )
    topic = f"edgeloop/v1/{site}/{device}/frame"
    headers: Headers = [("content-type", b"image/jpeg")]
    headers += [(k, v.encode()) for k, v in to_properties(meta)]
    headers += [
        ("mqtt.topic", topic.encode()),
        ("edge.ts", str(ts).encode()),
        ("bridge.ts", str(time.time_ns()).encode()),
    ]
    return device.encode(), frame.jpeg, headers


# --- results -------------------------------------------------------------------------------
def sink_results(site: str, n: int, base_ts: int, devices: int = 50) -> list[ResultV1]:
    """``n`` classify results as edge nodes send them: 50 devices on 4 lines, 1 ms apart.

    Every result has its own timestamp, so every one is a distinct InfluxDB point.
    Nine in ten are confident (no probabilities); the rest are uncertain and carry
    the distribution and a frame id, like the edge's.
    """
    package = builtin_package("conveyor-int8")
    labels = list(package.manifest.labels)
    ref = package.ref
    rng = random.Random(n)
    out = []
    for i in range(n):
        d = i % devices
        confident = rng.random() < 0.9
        label = labels[0] if rng.random() < 0.85 else rng.choice(labels[1:])
        score = round(rng.uniform(0.985, 1.0) if confident else rng.uniform(0.4, 0.95), 5)
        rest = (1.0 - score) / (len(labels) - 1)
        probs = None if confident else {k: round(score if k == label else rest, 5) for k in labels}
        out.append(
            ResultV1(
                id=new_id(),
                site=site,
                device=f"dev-{d:02d}",
                seq=i // devices,
                ts=base_ts + i * 1_000_000,
                model=ref,
                task="classify",
                source="cam0",
                line=f"line-{d % 4}",
                label=label,
                score=score,
                margin=round(score - rest, 5),
                entropy=round(rng.uniform(0.01, 0.2 if confident else 1.2), 5),
                probs=probs,
                route="confident" if confident else "uncertain",
                frame_id=None if confident else new_id(),
                latency_ms=round(rng.uniform(2.0, 6.0), 3),
            )
        )
    return out


def anomaly_result(site: str, device: str, seq: int, ts: int) -> ResultV1:
    """An anomalous sensor window of a press, as the edge's anomaly model reports it."""
    return ResultV1(
        id=new_id(),
        site=site,
        device=device,
        seq=seq,
        ts=ts,
        model=builtin_package("machine-anomaly-int8").ref,
        task="anomaly",
        source="press0",
        line="line-0",
        label="anomaly",
        score=4.2,
        route="anomalous",
        latency_ms=0.8,
        anomaly=AnomalySummary(
            window_s=1.0,
            threshold=3.0,
            features={"vibration_rms": 2.7, "temperature_c": 81.5, "current_a": 12.1},
        ),
    )


def produce(bootstrap: str, topic: str, items: Iterable[KafkaItem]) -> int:
    """Produce ``items`` (acks=all) and wait until Kafka has them all; return the count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=8 << 20,
    )
    # Its I/O thread shares the GIL with this send loop and warns that it is "blocking
    # the event loop"; harmless here (the loop is ours and nothing else waits on it).
    selector_log = logging.getLogger("kafka.net.selector")
    level = selector_log.level
    selector_log.setLevel(logging.ERROR)
    count = 0
    try:
        for key, value, headers in items:
            producer.send(topic, key=key, value=value, headers=headers)
            count += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
        selector_log.setLevel(level)
    return count


def mqtt_client(host: str, port: int, client_id: str) -> Any:
    """A connected paho MQTT v5 client with its network loop running (QoS 1 publishing)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(host, port)
    client.loop_start()
    if not connected.wait(10):
        raise EdgeloopError(f"MQTT connect to {host}:{port} timed out")
    return client


# --- InfluxDB ------------------------------------------------------------------------------
class Buckets:
    """Temporary InfluxDB buckets, created with the operator token and deleted on close."""

    def __init__(self, creds: InfluxCredentials):
        from influxdb_client.client.influxdb_client import InfluxDBClient

        self._client: Any = InfluxDBClient(url=creds.url, token=creds.operator_token, org=creds.org)
        self._org = creds.org
        self._made: list[Any] = []

    def create(self, name: str) -> str:
        """Create bucket ``name`` (infinite retention); return its name."""
        bucket = self._client.buckets_api().create_bucket(bucket_name=name, org=self._org)
        self._made.append(bucket)
        return name

    def close(self) -> None:
        """Delete every bucket made here."""
        api = self._client.buckets_api()
        for bucket in self._made:
            try:
                api.delete_bucket(bucket)
            except Exception:  # clean-up goes on; the name is unique anyway
                print(f"[bench cloud] could not delete bucket {bucket.name}", file=sys.stderr)
        self._made.clear()
        self._client.close()


class AlertWatcher:
    """Asks InfluxDB which subjects have a firing alert, as an operator's query would."""

    def __init__(self, client: Any, bucket: str, rule: str, since_ns: int):
        self._client = client
        self._flux = (
            f'from(bucket: "{bucket}") |> range(start: time(v: {since_ns}))'
            f' |> filter(fn: (r) => r._measurement == "alert" and r._field == "id"'
            f' and r.state == "firing" and r.rule == "{rule}")'
            ' |> keep(columns: ["subject", "_value"]) |> group()'
        )

    def firing(self) -> set[str]:
        """Subjects with a firing alert queryable now."""
        tables = self._client.query_api().query(self._flux, org=self._client.org)
        return {str(r.values["subject"]) for t in tables for r in t.records}
