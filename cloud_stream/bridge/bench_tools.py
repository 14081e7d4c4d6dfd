"""Process and Kafka helpers of ``edgeloop bench bridge``: publish, read, measure."""

from __future__ import annotations

__all__ = [
    "RssSampler",
    "ToolPublisher",
    "TopicReader",
    "cpu_s",
    "create_topics",
    "free_ports",
    "healthy",
    "ids_of",
    "process_tree",
    "read_topic",
    "rss_mb",
    "wait_for_records",
]

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline.errors import EdgeloopError


class ToolPublisher:
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


def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 4) -> None:
    """Create ``names`` (broker-stamped ``LogAppendTime``, so record times are append times)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"message.timestamp.type": "LogAppendTime"},
                )
                for name in names
            ]
        )
    finally:
        admin.close()


def wait_for_records(
    bootstrap: str, topic: str, expect: int, timeout: float, idle_s: float = 3.0
) -> int:
    """Wait until ``topic`` holds ``expect`` records and has been still for ``idle_s``.

    Only end offsets are polled (a request every 0.2 s), so the harness does not
    parse records, and compete for the CPU, while the pipe it measures is busy.
    Gives up after ``timeout`` s, or after 20 s without a new record (the rest is
    lost). Returns the record count.
    """
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = sum(consumer.end_offsets(partitions).values())
            now = time.monotonic()
            if count != last:
                last, last_change = count, now
            still = now - last_change
            if (count >= expect and still > idle_s) or still > 20:
                break
            time.sleep(0.2)
        return last
    finally:
        consumer.close()


class TopicReader:
    """Reads one topic from its start, a little more on each call, never a record twice.

    Args:
        bootstrap: Kafka bootstrap address.
        topic: The topic (it must exist).
    """

    def __init__(self, bootstrap: str, topic: str):
        from kafka import TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        partitions = [
            TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            raise EdgeloopError(f"topic {topic!r} has no partitions (does it exist?)")
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)

    def read(self, count: int, timeout: float) -> list[Any]:
        """The next ``count`` records (fewer if ``timeout`` s pass first)."""
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            left = count - len(records)
            for recs in self.consumer.poll(timeout_ms=300, max_records=min(left, 10_000)).values():
                records.extend(recs)
        return records

    def close(self) -> None:
        """Leave the broker."""
        self.consumer.close()


def read_topic(
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


def ids_of(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records if r.value]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the bridge's workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            children = Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()
        except OSError:
            children = []
        pids.extend(int(c) for c in children)
        i += 1
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    total = 0.0
    for p in process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(x.split()[1]) / 1024 for x in lines if x.startswith("VmRSS:"))
    return total


class RssSampler:
    """Samples :func:`rss_mb` of a process tree every ``interval_s`` inside a ``with``.

    ``samples`` holds one reading at the start, one per interval, and one at the end.
    """

    def __init__(self, pid: int, interval_s: float = 1.0):
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self.samples.append(rss_mb(self.pid))
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb(self.pid))


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (worker i serves on port + i)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise EdgeloopError(f"no {count} consecutive free ports for the bridge's status servers")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(json.loads(r.read())["ok"])
    except OSError:
        return False


def cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by ``pid`` and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
