"""The ``mqtt`` sensor source against the real Mosquitto: assembly, bad payloads, NaN."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from edge_node.sources.base import SensorBlock
from edge_node.sources.mqtt_in import MqttSource, MqttSourceConfig

TS = 1_732_600_000.25
TS_NS = 1_732_600_000_250_000_000


@pytest.fixture
def source_factory(devstack: Any, unique: str) -> Iterator[Callable[..., MqttSource]]:
    made: list[MqttSource] = []
    host, port = devstack.mqtt_address

    def make(**fields: Any) -> MqttSource:
        settings: dict[str, Any] = {
            "name": "plc",
            "mqtt": {"host": host, "port": port},
            "topic": f"{unique}/line1/+/sensors",
            "channels": ["temperature_c", "current_a"],
            "rate_hz": 2,
            "block_samples": 3,
        }
        settings.update(fields)
        src = MqttSource(MqttSourceConfig.model_validate(settings))
        src.open()
        made.append(src)
        assert src.wait_ready(10), f"not subscribed: {src.state} {src.errors}"
        return src

    yield make
    for src in made:
        src.close()


@pytest.fixture
def send(mqtt_factory: Any, unique: str) -> Callable[..., None]:
    pub = mqtt_factory()

    def publish(device: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = pub.client.publish(f"{unique}/line1/{device}/sensors", data, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    return publish


def next_block(src: MqttSource) -> SensorBlock:
    block = src.read(timeout=10)
    assert block is not None, f"no block: {src.state} {src.errors}"
    return block


def test_single_readings_fill_blocks_in_channel_order(source_factory, send, unique):
    src = source_factory()
    assert src.state == "ok"
    send("plc1", {"ts": TS, "values": {"current_a": 3.0, "temperature_c": 40.0}})
    send("plc1", {"ts": TS + 0.5, "values": {"temperature_c": 40.5}})  # current missing
    send("plc1", {"ts": TS + 1.0, "values": {"temperature_c": 41, "current_a": 3.2}})
    send("plc1", {"ts": TS + 1.5, "values": {"temperature_c": 41.5, "current_a": 3.3}})
    block = next_block(src)
    assert block.channels == ("temperature_c", "current_a")
    assert block.values.dtype == np.float64
    np.testing.assert_array_equal(block.values, [[40.0, 3.0], [40.5, np.nan], [41.0, 3.2]])
    assert block.ts_ns == TS_NS
    assert block.rate_hz == 2
    assert block.index == 0
    assert block.extra == {"topic": f"{unique}/line1/plc1/sensors"}
    assert src.errors == {"missing_channel": 1}
    assert src.read(timeout=0.2) is None  # the fourth reading waits for two more


def test_blocks_are_split_and_joined_with_their_timestamps(source_factory, send):
    src = source_factory(channels=["vibration_g", "temperature_c"], rate_hz=100, block_samples=4)
    vib = [0.1 * i for i in range(6)]
    send(
        "plc1",
        {"ts": TS_NS, "rate_hz": 100, "values": {"vibration_g": vib, "temperature_c": [40] * 6}},
    )
    send("plc1", {"ts": TS + 0.06, "values": {"vibration_g": [0.6, 0.7]}})
    first, second = next_block(src), next_block(src)
    np.testing.assert_allclose(first.values[:, 0], vib[:4])
    np.testing.assert_allclose(second.values[:, 0], [*vib[4:], 0.6, 0.7])
    np.testing.assert_array_equal(second.values[:, 1], [40, 40, np.nan, np.nan])
    assert first.ts_ns == TS_NS
    assert second.ts_ns == TS_NS + 40_000_000  # row 4 at 100 Hz
    assert (first.index, second.index) == (0, 1)
    assert second.values.shape == (4, 2)


def test_devices_are_assembled_apart(source_factory, send, unique):
    src = source_factory(block_samples=2)
    for i in range(2):
        send("a", {"ts": TS + i, "values": {"temperature_c": 10 + i, "current_a": 1}})
        send("b", {"ts": TS + i, "values": {"temperature_c": 20 + i, "current_a": 2}})
    blocks = {b.extra["topic"].split("/")[2]: b for b in (next_block(src), next_block(src))}
    np.testing.assert_array_equal(blocks["a"].values[:, 0], [10, 11])
    np.testing.assert_array_equal(blocks["b"].values[:, 0], [20, 21])


def test_invalid_payloads_are_counted_and_the_source_keeps_going(source_factory, send, caplog):
    src = source_factory(block_samples=1, max_payload_bytes=200)
    bad: list[object] = [
        b"\xff\xfe not json",
        b"{",
        [1, 2, 3],
        {"values": {"temperature_c": 1}},
        {"ts": "yesterday", "values": {"temperature_c": 1}},
        {"ts": TS, "values": {"temperature_c": "hot"}},
        {"ts": TS, "values": {"temperature_c": [1, 2], "current_a": 3}},
        {"ts": TS, "rate_hz": 50, "values": {"temperature_c": [1, 2]}},
        {"ts": TS, "values": {"temperature_c": 1}, "colour": "red"},
        {"ts": TS, "values": {"temperature_c": list(range(100))}},
    ]
    for payload in bad:
        send("plc1", payload)
    send("plc1", {"ts": TS, "values": {"temperature_c": 7, "current_a": 1}})
    block = next_block(src)  # in order on one topic: every bad one was handled before
    np.testing.assert_array_equal(block.values, [[7, 1]])
    assert block.index == 0
    assert src.errors == {
        "not_json": 2,
        "shape": 4,
        "bad_ts": 1,
        "non_numeric": 1,
        "rate_mismatch": 1,
        "oversize": 1,
    }
    assert src.state == "ok"
    assert any("plc1/sensors" in r.getMessage() for r in caplog.records)


def test_nan_inf_and_null_pass_as_nan(source_factory, send):
    src = source_factory(block_samples=3)
    send("plc1", {"ts": TS, "values": {"temperature_c": math.nan, "current_a": 1}})
    send("plc1", {"ts": TS + 0.5, "values": {"temperature_c": math.inf, "current_a": 2}})
    send("plc1", {"ts": TS + 1, "values": {"temperature_c": None, "current_a": 3}})
    block = next_block(src)
    assert np.isnan(block.values[:, 0]).all()
    np.testing.assert_array_equal(block.values[:, 1], [1, 2, 3])
    assert src.errors == {}


def test_close_marks_the_source_lost(source_factory):
    src = source_factory()
    assert src.state == "ok"
    src.close()
    assert src.state == "lost"
    assert src.read(timeout=0) is None
    src.close()
