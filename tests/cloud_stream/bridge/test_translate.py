"""Bridge validation: every MQTT message becomes a Kafka record or a dead letter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.service import device_slot
from cloud_stream.bridge.translate import DeadLetter, KafkaRecord, translate
from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.schemas import encode, to_properties

CFG = BridgeConfig()
TOPIC = "edgeloop/v1/plant-a/cam-01/result"
JPEG = b"\xff\xd8\xff\xe0" + b"\x10" * 500 + b"\xff\xd9"


def _frame_props(frame_meta_factory, **over):
    fields = {"seq": 3, "score": 0.55, "size": len(JPEG), **over}
    return to_properties(frame_meta_factory(**fields))


def test_valid_result_becomes_a_keyed_record(result_factory):
    msg = result_factory()
    out = translate(CFG, TOPIC, encode(msg), bridge_ts=123)
    assert isinstance(out, KafkaRecord)
    assert out.topic == "edgeloop.results"
    assert out.key == b"cam-01"
    assert out.value == encode(msg)
    headers = dict(out.headers)
    assert headers["type"] == b"result"
    assert headers["v"] == b"1"
    assert headers["id"] == msg.id.encode()
    assert headers["mqtt.topic"] == TOPIC.encode()
    assert headers["edge.ts"] == str(msg.ts).encode()
    assert headers["bridge.ts"] == b"123"
    assert headers["content-type"] == b"application/json"


def test_frame_keeps_jpeg_bytes_and_metadata_headers(model_ref, frame_meta_factory):
    props = _frame_props(frame_meta_factory)
    out = translate(CFG, "edgeloop/v1/plant-a/cam-01/frame", JPEG, props)
    assert isinstance(out, KafkaRecord)
    assert out.topic == "edgeloop.frames"
    assert out.value == JPEG
    headers = dict(out.headers)
    assert headers["content-type"] == b"image/jpeg"
    assert headers["model.name"] == model_ref.name.encode()
    assert headers["width"] == b"640"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"\xff\xd8 not a jpeg", "corrupt_frame"), (JPEG[:-2], "corrupt_frame")],
)
def test_corrupt_frames_are_dead_letters(frame_meta_factory, payload, reason):
    props = _frame_props(frame_meta_factory, size=len(payload))
    out = translate(CFG, "edgeloop/v1/plant-a/cam-01/frame", payload, props)
    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_frame_without_metadata(model_ref):
    out = translate(CFG, "edgeloop/v1/plant-a/cam-01/frame", JPEG, [])
    assert isinstance(out, DeadLetter)
    assert out.reason == "unknown_type"


def test_spoofed_device_is_rejected(result_factory):
    out = translate(CFG, TOPIC, encode(result_factory(device="cam-99")))
    assert isinstance(out, DeadLetter)
    assert out.reason == "invalid"
    assert "cam-99" in out.detail
    assert out.key == b"cam-01"


def test_wrong_type_for_stream(result_factory):
    out = translate(CFG, "edgeloop/v1/plant-a/cam-01/telemetry", encode(result_factory()))
    assert isinstance(out, DeadLetter)
    assert "'result' message on a 'telemetry' topic" in out.detail


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("edgeloop/v1/plant-a/cam-01/bogus", "unknown_stream"),
        ("edgeloop/v1/plant-a/cam 01/result", "bad_topic"),
        ("edgeloop/v1/plant-a/result", "bad_topic"),
    ],
)
def test_bad_topics(topic, reason):
    out = translate(CFG, topic, b"{}")
    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_dead_letter_headers_and_original_bytes():
    payload = b'{"type": "result", "v": 1, "oops": tru'
    out = translate(CFG, TOPIC, payload, component="bridge-7")
    assert isinstance(out, DeadLetter)
    assert out.topic == "edgeloop.dlq"
    assert out.value == payload
    headers = dict(out.headers)
    assert headers["dlq.reason"] == b"not_json"
    assert headers["dlq.source"] == TOPIC.encode()
    assert headers["dlq.component"] == b"bridge-7"
    assert headers["dlq.size"] == str(len(payload)).encode()


def test_oversize_json():
    cfg = BridgeConfig(max_json_bytes=1024)
    out = translate(cfg, TOPIC, b" " * 2000)
    assert isinstance(out, DeadLetter)
    assert out.reason == "oversize"


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=2048),
    st.sampled_from(["result", "telemetry", "status", "frame", "ota/report", "nope"]),
)
def test_any_bytes_become_record_or_dead_letter(payload, stream):
    out = translate(CFG, f"edgeloop/v1/p/d/{stream}", payload, [])
    assert isinstance(out, DeadLetter | KafkaRecord)
    if isinstance(out, DeadLetter):
        assert out.value == payload
        assert out.detail


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
def test_json_junk_is_a_dead_letter(obj):
    out = translate(CFG, TOPIC, json.dumps(obj).encode())
    assert isinstance(out, DeadLetter)
    assert out.reason in {"invalid", "unknown_type"}


def test_device_slots_are_stable_and_spread():
    slots = [device_slot(f"cam-{i}", 4) for i in range(400)]
    assert slots == [device_slot(f"cam-{i}", 4) for i in range(400)]
    assert all(40 < slots.count(k) < 160 for k in range(4))


def test_config_rejects_bad_partition_and_unknown_stream():
    with pytest.raises(ConfigError) as info:
        parse_config(
            "partition: {index: 2, count: 2}\ntopic_map: {bogus: x}\n", BridgeConfig, env={}
        )
    text = str(info.value)
    assert "unknown stream 'bogus'" in text


def test_example_config_is_valid():
    from pathlib import Path

    from pipeline.config import load_config

    path = Path(__file__).resolve().parents[3] / "configs" / "bridge.example.yaml"
    cfg = load_config(path, BridgeConfig, env={})
    assert cfg.mqtt.receive_maximum >= 1000


def test_a_pre_parsed_topic_gives_the_same_record(result_factory):
    from pipeline.topics import parse_mqtt_topic

    payload = encode(result_factory())
    parsed = translate(CFG, TOPIC, payload, bridge_ts=5, addr=parse_mqtt_topic(TOPIC))
    assert parsed == translate(CFG, TOPIC, payload, bridge_ts=5)


def test_a_frame_too_large_for_kafka_is_a_dead_letter_with_its_start(frame_meta_factory):
    """Kafka refuses records over ~1 MiB: such a frame would be retried forever and
    stall the bridge. It goes to the DLQ instead, with as much of it as Kafka takes."""
    big = b"\xff\xd8" + b"\x11" * 2_000_000 + b"\xff\xd9"
    props = _frame_props(frame_meta_factory, size=len(big))
    out = translate(CFG, "edgeloop/v1/plant-a/cam-01/frame", big, props)
    assert isinstance(out, DeadLetter)
    assert out.reason == "oversize"
    assert out.value == big[: CFG.max_frame_bytes]
    headers = dict(out.headers)
    assert headers["dlq.size"] == str(len(big)).encode()
    assert headers["dlq.kept"] == str(CFG.max_frame_bytes).encode()
    small = translate(CFG, TOPIC, b"{not json")
    assert isinstance(small, DeadLetter)
    assert "dlq.kept" not in dict(small.headers), "a payload kept whole says nothing"


def test_limits_that_kafka_could_never_take_are_a_config_error():
    with pytest.raises(ValueError, match="max_request_bytes"):
        BridgeConfig(max_frame_bytes=4_000_000)
    ok = BridgeConfig(max_frame_bytes=4_000_000, producer={"max_request_bytes": 4_200_000})
    assert ok.max_frame_bytes == 4_000_000
