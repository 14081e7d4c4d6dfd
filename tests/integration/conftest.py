"""Fixtures that talk to the real local stack (Mosquitto, Kafka, InfluxDB).

``devstack`` reuses a running stack or starts one, and stops only what it started.
Factories hand out clients and close them after the test; every test gets its
own topics and bucket, so tests never see each other's data.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.config.devstack import DevstackConfig
from pipeline.devstack import Devstack, InfluxCredentials


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def devstack() -> Iterator[Devstack]:
    def progress(msg: str) -> None:
        print(f"[devstack] {msg}", file=sys.__stderr__, flush=True)

    stack = Devstack(DevstackConfig(), progress)
    started = [] if stack.healthy() else stack.up()
    yield stack
    if started:
        stack.down(started)


@pytest.fixture(scope="session", autouse=True)
def _delete_test_topics(devstack: Devstack) -> Iterator[None]:
    """Delete the Kafka topics this session created (unique per test, plus Faust's
    changelog and internal topics): a cluster with thousands of stale topics makes
    every client's metadata slow, and benchmarks with it."""
    from cloud_stream.kafka_conn import delete_topics, list_topics
    from pipeline.config.base import KafkaConfig

    kafka = KafkaConfig(bootstrap_servers=[devstack.kafka_bootstrap])
    before = list_topics(kafka)
    yield
    delete_topics(kafka, list_topics(kafka) - before)


@pytest.fixture
def unique() -> str:
    """A short unique name for topics, groups and buckets of one test."""
    return f"t{uuid.uuid4().hex[:12]}"


# --- MQTT -------------------------------------------------------------------------
class MqttRecorder:
    """A connected paho v5 client that records what it receives."""

    def __init__(self, client: Any):
        self.client = client
        self.messages: list[Any] = []
        self.cond = threading.Condition()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK, so nothing published after is missed."""
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=qos)
        assert done.wait(10), "SUBACK timed out"

    def on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.messages)


@pytest.fixture
def mqtt_factory(devstack: Devstack) -> Iterator[Callable[..., MqttRecorder]]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    made: list[MqttRecorder] = []

    def make(
        client_id: str = "",
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        manual_ack: bool = False,
    ) -> MqttRecorder:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        rec = MqttRecorder(client)
        client.on_message = rec.on_message
        connected = threading.Event()
        client.on_connect = lambda *a: connected.set()
        props = Properties(PacketTypes.CONNECT)
        if session_expiry:
            props.SessionExpiryInterval = session_expiry
        host, port = devstack.mqtt_address
        client.connect(host, port, keepalive=30, clean_start=clean_start, properties=props)
        client.loop_start()
        assert connected.wait(10), "MQTT connect timed out"
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.client.disconnect()
        rec.client.loop_stop()


# --- Kafka ------------------------------------------------------------------------
@pytest.fixture
def kafka_topic(devstack: Devstack, unique: str) -> Iterator[str]:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=devstack.kafka_bootstrap)
    name = f"test.{unique}"
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    yield name
    admin.delete_topics([name])
    admin.close()


@pytest.fixture
def kafka_producer_factory(devstack: Devstack) -> Iterator[Callable[..., Any]]:
    from kafka import KafkaProducer

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        opts: dict[str, Any] = {"bootstrap_servers": devstack.kafka_bootstrap, "acks": "all"}
        opts.update(kwargs)
        producer = KafkaProducer(**opts)
        made.append(producer)
        return producer

    yield make
    for p in made:
        p.close(timeout=10)


@pytest.fixture
def kafka_consumer_factory(devstack: Devstack, unique: str) -> Iterator[Callable[..., Any]]:
    from kafka import KafkaConsumer

    made: list[Any] = []

    def make(*topics: str, **kwargs: Any) -> Any:
        opts: dict[str, Any] = {
            "bootstrap_servers": devstack.kafka_bootstrap,
            "group_id": f"{unique}-group",
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "consumer_timeout_ms": 15_000,
        }
        opts.update(kwargs)
        consumer = KafkaConsumer(*topics, **opts)
        made.append(consumer)
        return consumer

    yield make
    for c in made:
        c.close()


# --- InfluxDB ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def influx_credentials(devstack: Devstack) -> InfluxCredentials:
    return devstack.influx_credentials()


@pytest.fixture
def influx_bucket(influx_credentials: InfluxCredentials, unique: str) -> Iterator[str]:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(
        url=influx_credentials.url,
        token=influx_credentials.operator_token,
        org=influx_credentials.org,
    ) as client:
        api = client.buckets_api()
        bucket = api.create_bucket(bucket_name=unique, org=influx_credentials.org)
        yield unique
        api.delete_bucket(bucket)


@pytest.fixture
def influx_client(influx_credentials: InfluxCredentials) -> Iterator[Any]:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(
        url=influx_credentials.url,
        token=influx_credentials.writer_token,
        org=influx_credentials.org,
    ) as client:
        yield client


# --- bridge -----------------------------------------------------------------------
@pytest.fixture
def bridge_settings(devstack: Devstack, unique: str) -> dict[str, Any]:
    """Bridge config as a dict: this test's own site, topics, DLQ and share group."""
    from tests.integration.helpers import free_port

    host, port = devstack.mqtt_address
    status_port = free_port()
    return {
        "instance": f"{unique}-b1",
        "share_group": f"{unique}-g",
        "site": unique,
        "topic_map": {
            "result": f"{unique}.results",
            "frame": f"{unique}.frames",
            "telemetry": f"{unique}.telemetry",
            "status": f"{unique}.status",
            "ota/report": f"{unique}.ota",
        },
        "dlq_topic": f"{unique}.dlq",
        "mqtt": {
            "host": host,
            "port": port,
            "receive_maximum": 1000,
            "session_expiry_s": 600,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
        },
        "kafka": {"bootstrap_servers": [devstack.kafka_bootstrap]},
        "producer": {"partitions": 4, "delivery_timeout_ms": 300_000},
        "metrics": {"enabled": True, "port": status_port},
        "health": {"enabled": True, "port": status_port},
        "logging": {"level": "INFO"},
    }


@pytest.fixture
def bridge_factory() -> Iterator[Callable[..., Any]]:
    """In-process bridges, stopped (drained) after the test."""
    from cloud_stream.bridge.config import BridgeConfig
    from cloud_stream.bridge.service import Bridge

    made: list[Any] = []

    def make(settings: dict[str, Any]) -> Any:
        bridge = Bridge(BridgeConfig.model_validate(settings))
        bridge.start()
        made.append(bridge)
        return bridge

    yield make
    for b in made:
        b.stop(timeout=10)


@pytest.fixture
def bridge_process_factory(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Bridges as child processes (`edgeloop bridge run`), killed after the test."""
    from tests.integration.helpers import BridgeProcess

    made: list[BridgeProcess] = []

    def make(settings: dict[str, Any]) -> BridgeProcess:
        proc = BridgeProcess(settings, tmp_path)
        made.append(proc)
        return proc

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def publisher(devstack: Devstack) -> Iterator[Any]:
    from tests.integration.helpers import Publisher

    host, port = devstack.mqtt_address
    pub = Publisher(host, port)
    yield pub
    pub.close()


# --- cloud worker -----------------------------------------------------------------
@pytest.fixture
def cloud_settings(
    devstack: Devstack, unique: str, influx_bucket: str, tmp_path: Any
) -> dict[str, Any]:
    """Cloud worker config as a dict: the bridge's topics (bridge_settings), this test's
    own app id, bucket, state and dataset folders, fast ticks and flushes."""
    from tests.integration.helpers import free_port

    return {
        "app_id": f"{unique}-cloud",
        "instance": f"{unique}-w1",
        "kafka": {"bootstrap_servers": [devstack.kafka_bootstrap]},
        "influx": {"bucket": influx_bucket},
        "topics": {
            "results": f"{unique}.results",
            "frames": f"{unique}.frames",
            "telemetry": f"{unique}.telemetry",
            "status": f"{unique}.status",
            "verdicts": f"{unique}.verdicts",
            "alerts": f"{unique}.alerts",
            "dlq": f"{unique}.dlq",
        },
        "partitions": 4,
        "state_dir": str(tmp_path / "state"),
        "datasets": {"root": str(tmp_path / "datasets"), "name": "conveyor"},
        "audit": {"tick_s": 1, "publish_every_s": 2, "window_s": 600, "step_s": 60},
        "sink": {"flush_s": 0.5, "alert_flush_s": 0.1, "retry_initial_s": 0.2, "retry_max_s": 1},
        "metrics": {"enabled": True, "port": free_port()},
        "logging": {"level": "INFO"},
    }


@pytest.fixture
def worker_process_factory(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Cloud workers as child processes (`edgeloop cloud worker`), stopped after the test."""
    from tests.integration.helpers import WorkerProcess

    made: list[WorkerProcess] = []

    def make(settings: dict[str, Any]) -> WorkerProcess:
        proc = WorkerProcess(settings, tmp_path)
        made.append(proc)
        return proc

    yield make
    for p in made:
        p.stop()
