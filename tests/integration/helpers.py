"""Helpers for integration tests: publishing many MQTT messages, draining Kafka."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from kafka import KafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Publisher:
    """A QoS 1 MQTT v5 publisher that counts broker acknowledgements (PUBACKs)."""

    def __init__(self, host: str, port: int, client_id: str = ""):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect(host, port)
        self.client.loop_start()
        assert connected.wait(10)

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes, properties: Any = None) -> Any:
        return self.client.publish(topic, payload, qos=1, properties=properties)

    def publish_all(self, items: Iterable[tuple[str, bytes]], timeout: float = 60) -> int:
        infos = [self.publish(t, p) for t, p in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        return sum(1 for i in infos if i.is_published())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain(
    bootstrap: str, topics: list[str], expect: int, timeout: float = 60, idle_s: float = 3.0
) -> list[Any]:
    """Read every record of ``topics`` from the start until ``expect`` arrived
    (then a short idle period, to catch extras) or time runs out."""
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
                last_new = time.monotonic()
            if len(records) >= expect and time.monotonic() - last_new > idle_s:
                break
    finally:
        consumer.close()
    return records


class ServiceProcess:
    """An ``edgeloop`` service as a real child process, for kill -9 tests.

    Subclasses name the command and where its health endpoint is.
    """

    command: tuple[str, ...] = ()
    name_key = "instance"

    def __init__(self, config: dict[str, Any], workdir: Path):
        self.config = config
        name = config[self.name_key]
        self.path = workdir / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def health_url(self) -> str:
        raise NotImplementedError

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.config['metrics']['port']}/metrics"

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.cli.main",
                    *self.command,
                    "--config",
                    str(self.path),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if self.healthy():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.command[0]} not healthy: {self.log.read_text()[-3000:]}")

    def healthy(self) -> bool:
        return self._ok(self.health_url)

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(json.loads(resp.read())["ok"])
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            self.proc.wait(60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class BridgeProcess(ServiceProcess):
    """``edgeloop bridge run``."""

    command = ("bridge", "run")

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.config['health']['port']}/healthz"

    def healthy(self) -> bool:
        """Every worker healthy (worker i serves on the health port + i), so subscribed."""
        port = self.config["health"]["port"]
        urls = [
            f"http://127.0.0.1:{port + i}/healthz" for i in range(self.config.get("workers", 1))
        ]
        return all(self._ok(url) for url in urls)


class WorkerProcess(ServiceProcess):
    """``edgeloop cloud worker``; healthy once Faust has its partitions and tables."""

    command = ("cloud", "worker")

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.config['metrics']['port']}/healthz"
