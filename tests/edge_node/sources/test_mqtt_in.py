"""The MQTT sensor source without a broker: payload parsing (with properties) and assembly."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_node.sources.mqtt_in import MqttSource, MqttSourceConfig
from edge_node.sources.mqtt_payload import PayloadError, parse_payload

CHANNELS = ["a", "b"]


def parse(doc: object, max_bytes: int = 10_000):
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_payload(data, CHANNELS, max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        (1_700_000_000, 1_700_000_000_000_000_000),
        (1_700_000_000.123456, 1_700_000_000_123_456_000),
        (1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
    ],
)
def test_ts_in_seconds_or_nanoseconds(ts, ns):
    assert parse({"ts": ts, "values": {"a": 1}}).ts_ns == ns


def test_single_reading_in_channel_order_with_missing_and_unknown():
    reading = parse({"ts": 1, "values": {"b": 2, "zzz": 5}})
    np.testing.assert_array_equal(reading.values, [[np.nan, 2]])
    assert reading.missing == ("a",)
    assert reading.unknown == ("zzz",)
    assert reading.rate_hz is None


def test_block_reading():
    reading = parse({"ts": 1, "rate_hz": 10, "values": {"a": [1, 2, 3], "b": [4, None, 6]}})
    np.testing.assert_array_equal(reading.values, [[1, 4], [2, np.nan], [3, 6]])
    assert reading.rate_hz == 10


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"x" * 101, "oversize"),
        (b"\xff\xfe{}", "not_json"),
        (b"nope", "not_json"),
        ([], "shape"),
        ({"ts": 1}, "shape"),
        ({"values": {"a": 1}}, "shape"),
        ({"ts": 1, "values": {}}, "shape"),
        ({"ts": 1, "values": {"a": [1], "b": 1}}, "shape"),
        ({"ts": 1, "values": {"a": [1], "b": [1, 2]}}, "shape"),
        ({"ts": 1, "values": {"a": []}}, "shape"),
        ({"ts": 1, "rate_hz": 0, "values": {"a": [1]}}, "shape"),
        ({"ts": 1, "rate_hz": True, "values": {"a": [1]}}, "shape"),
        ({"ts": 1, "values": {"a": 1}, "extra": 1}, "shape"),
        ({"ts": True, "values": {"a": 1}}, "bad_ts"),
        ({"ts": -5, "values": {"a": 1}}, "bad_ts"),
        ({"ts": 1e18, "values": {"a": 1}}, "bad_ts"),
        ({"ts": 1, "values": {"a": "1"}}, "non_numeric"),
        ({"ts": 1, "values": {"a": [1, {}]}}, "non_numeric"),
        ({"ts": 1, "values": {"a": False}}, "non_numeric"),
    ],
)
def test_invalid_payloads_have_a_reason(payload, reason):
    with pytest.raises(PayloadError) as info:
        parse(payload, max_bytes=100)
    assert info.value.reason == reason


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_payload_error(data):
    try:
        reading = parse_payload(data, CHANNELS, max_bytes=150)
    except PayloadError as exc:
        assert exc.reason in {"oversize", "not_json", "shape", "bad_ts", "non_numeric"}
    else:
        assert reading.values.shape[1] == 2


values = st.one_of(st.none(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True))


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(values, min_size=3, max_size=3), min_size=1
    ),
    st.floats(min_value=1, max_value=4e9, allow_nan=False),
)
def test_valid_blocks_round_trip(cols, ts):
    reading = parse({"ts": ts, "values": cols})
    assert reading.values.shape == (3, 2)
    assert reading.values.dtype == np.float64
    assert not np.isinf(reading.values).any()
    for j, name in enumerate(CHANNELS):
        for i in range(3):
            raw = cols.get(name, [None] * 3)[i]
            got = reading.values[i, j]
            if raw is None or not math.isfinite(raw):
                assert math.isnan(got)
            else:
                assert got == float(raw)


def make_source(**fields: object) -> MqttSource:
    settings: dict[str, object] = {
        "name": "m",
        "topic": "p/+/s",
        "channels": CHANNELS,
        "rate_hz": 10,
        "block_samples": 4,
    }
    settings.update(fields)
    return MqttSource(MqttSourceConfig.model_validate(settings))


def deliver(src: MqttSource, topic: str, doc: object) -> None:
    msg = SimpleNamespace(topic=topic, payload=json.dumps(doc).encode())
    src._on_message(None, None, msg)


def test_assembly_carries_timestamps_across_chunks_without_a_broker():
    src = make_source(block_samples=2)
    deliver(src, "p/x/s", {"ts": 100, "values": {"a": [1, 2, 3, 4, 5]}})
    blocks = [src.read(timeout=0) for _ in range(3)]
    assert [b.ts_ns for b in blocks if b] == [100_000_000_000 + k * 200_000_000 for k in (0, 1)]
    assert blocks[2] is None
    deliver(src, "p/x/s", {"ts": 100.5, "values": {"a": 6}})
    block = src.read(timeout=0)
    assert block is not None
    assert block.ts_ns == 100_400_000_000  # the row left over from the first payload
    np.testing.assert_array_equal(block.values[:, 0], [5, 6])


def test_a_full_queue_drops_the_oldest_block():
    src = make_source(block_samples=1, max_queued_blocks=2)
    for i in range(4):
        deliver(src, "p/x/s", {"ts": 1 + i, "values": {"a": i, "b": i}})
    got = [src.read(timeout=0) for _ in range(2)]
    assert [b.values[0, 0] for b in got if b] == [2, 3]
    assert src.errors == {"overflow": 2}


def test_topics_beyond_the_limit_are_counted():
    src = make_source(block_samples=1, max_topics=1)
    deliver(src, "p/x/s", {"ts": 1, "values": {"a": 1, "b": 1}})
    deliver(src, "p/y/s", {"ts": 1, "values": {"a": 1, "b": 1}})
    assert src.errors == {"too_many_topics": 1}


def test_rate_mismatch_is_rejected():
    src = make_source()
    deliver(src, "p/x/s", {"ts": 1, "rate_hz": 11, "values": {"a": [1]}})
    assert src.errors == {"rate_mismatch": 1}


def test_state_follows_the_connection():
    src = make_source()
    assert src.state == "lost"  # not connected yet
    src._client = object()  # as if opened
    src._on_subscribe(None, None, 1, [SimpleNamespace(is_failure=False)], None)
    assert src.state == "ok"
    assert src.wait_ready(0)
    src._on_disconnect(None, None, None, "keep alive timeout", None)
    assert src.state == "lost"
    assert src.errors == {"reconnect": 1}
    assert not src.wait_ready(0)
    src._on_subscribe(None, None, 2, [SimpleNamespace(is_failure=True)], None)
    assert src.state == "error"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"topic": "a/#/b"}, "'#'"),
        ({"topic": "a/b+"}, r"'\+'"),
        ({"channels": []}, "at least 1"),
        ({"channels": ["a", "a"]}, "unique"),
        ({"qos": 2}, "qos"),
        ({"rate_hz": 0}, "greater than 0"),
    ],
)
def test_config_rejects(fields, match):
    with pytest.raises(ValidationError, match=match):
        make_source(**fields)
