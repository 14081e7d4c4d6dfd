"""Benchmark of the outbox and the publisher, each against a baseline in the same run.

* puts/s of ``Outbox.put`` with ``synchronous=NORMAL`` (crash-safe) against
  ``FULL`` (power-loss-safe), and of ``put_many`` in batches of 10;
* acks/s (take + ack in batches, as the publisher does);
* publish rate to a real broker: outbox -> Publisher -> PUBACK -> delete,
  against a bare paho client publishing the same payloads at QoS 1 with the
  same window (no outbox, nothing durable).

Run it as ``edgeloop bench outbox`` (once registered) or call :func:`run`.
"""

from __future__ import annotations

__all__ = ["run"]

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_node.outbox import Outbox, OutboxItem, Synchronous
from edge_node.publish.mqtt import Publisher
from pipeline.config.base import MqttConfig
from pipeline.topics import Stream, mqtt_topic

_PAYLOAD = b'{"type":"result","v":1,' + b'"x":"' + b"0" * 280 + b'"}'
_WINDOW = 256


def _puts(folder: Path, sync: Synchronous, n: int) -> float:
    with Outbox(
        folder / f"puts-{sync}.db", max_bytes=10**10, device="bench", synchronous=sync
    ) as box:
        t0 = time.perf_counter()
        for _ in range(n):
            box.put(Stream.RESULT, _PAYLOAD, seq=box.next_seq())
        return n / (time.perf_counter() - t0)


def _put_many(folder: Path, n: int, batch: int = 10) -> float:
    with Outbox(folder / "many.db", max_bytes=10**10, device="bench") as box:
        t0 = time.perf_counter()
        for _ in range(n // batch):
            box.put_many(
                [OutboxItem(Stream.RESULT, _PAYLOAD, box.next_seq()) for _ in range(batch)]
            )
        return (n // batch * batch) / (time.perf_counter() - t0)


def _acks(folder: Path, n: int) -> float:
    with Outbox(folder / "acks.db", max_bytes=10**10, device="bench") as box:
        box.put_many([OutboxItem(Stream.RESULT, _PAYLOAD, box.next_seq()) for _ in range(n)])
        t0 = time.perf_counter()
        while rows := box.take(_WINDOW):
            box.ack(r.row_id for r in rows)
        return n / (time.perf_counter() - t0)


def _publish(folder: Path, config: MqttConfig, n: int) -> dict[str, float]:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    with Outbox(folder / "pub.db", max_bytes=10**10, device=tag) as box:
        box.put_many([OutboxItem(Stream.RESULT, _PAYLOAD, box.next_seq()) for _ in range(n)])
        pub = Publisher(box, config, site=tag, device=tag, max_inflight=_WINDOW)
        pub.start()
        if not pub.wait_connected(10):
            pub.stop(0)
            raise RuntimeError(f"no MQTT broker at {config.host}:{config.port}")
        t0 = time.perf_counter()
        drained = pub.wait_idle(300)
        elapsed = time.perf_counter() - t0
        pub.stop(2)
    if not drained:
        raise RuntimeError("the publisher did not drain the outbox in 300 s")
    return {"msgs_per_s": n / elapsed, "seconds": elapsed}


def _bare_paho(config: MqttConfig, n: int) -> float:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tag, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(_WINDOW)
    done = threading.Event()
    acked = [0]

    def on_publish(*_: Any) -> None:
        acked[0] += 1
        if acked[0] >= n:
            done.set()

    connected = threading.Event()
    client.on_publish = on_publish
    client.on_connect = lambda *_a: connected.set()
    client.connect(config.host, config.port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError(f"no MQTT broker at {config.host}:{config.port}")
        topic = mqtt_topic(tag, tag, Stream.RESULT)
        t0 = time.perf_counter()
        for _ in range(n):
            client.publish(topic, _PAYLOAD, qos=1)
        done.wait(300)
        return n / (time.perf_counter() - t0)
    finally:
        client.disconnect()
        client.loop_stop()


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return one JSON-able report.

    The broker is ``EDGELOOP_MQTT_HOST``/``EDGELOOP_MQTT_PORT`` (default the
    devstack's 127.0.0.1:1883); the outbox files go to a temporary folder (set
    ``EDGELOOP_BENCH_DIR`` to measure another disk).
    """
    n = 2_000 if quick else 20_000
    config = MqttConfig(
        host=os.environ.get("EDGELOOP_MQTT_HOST", "127.0.0.1"),
        port=int(os.environ.get("EDGELOOP_MQTT_PORT", "1883")),
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("EDGELOOP_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        normal = _puts(folder, "NORMAL", n)
        full = _puts(folder, "FULL", max(200, n // 10))
        report: dict[str, Any] = {
            "messages": n,
            "payload_bytes": len(_PAYLOAD),
            "puts_per_s": {"NORMAL": round(normal), "FULL": round(full)},
            "full_over_normal": round(full / normal, 3),
            "put_many_10_per_s": round(_put_many(folder, n)),
            "acks_per_s": round(_acks(folder, n)),
        }
        published = _publish(folder, config, n)
    bare = _bare_paho(config, n)
    report["publish"] = {
        "broker": f"{config.host}:{config.port}",
        "window": _WINDOW,
        "outbox_msgs_per_s": round(published["msgs_per_s"]),
        "bare_paho_msgs_per_s": round(bare),
        "outbox_over_bare": round(published["msgs_per_s"] / bare, 3),
    }
    return report
