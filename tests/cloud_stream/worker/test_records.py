"""Decoding Kafka records in the workers, and the dead letters of those that fail."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_stream.worker.records import Record, dead_letter, decode_frame, decode_json
from pipeline.errors import SchemaError
from pipeline.schemas import ResultV1, StatusV1, encode
from pipeline.schemas.frame import MAX_FRAME_BYTES
from pipeline.schemas.properties import to_properties
from tests.cloud_stream.alerts.messages import result, status
from tests.cloud_stream.worker.frames import (
    NS,
    T0,
    frame_headers,
    frame_meta,
    frame_record,
    jpeg,
)


def _rec(value: bytes, topic: str = "edgeloop.results", key: bytes | None = b"cam-01") -> Record:
    return Record(topic, 2, 17, key, value)


# --- JSON records -----------------------------------------------------------------------------


def test_decode_json_returns_the_message() -> None:
    msg = result(1, T0)
    got = decode_json(_rec(encode(msg)), expect=ResultV1)
    assert got == msg


def test_decode_json_without_expect_takes_any_known_type() -> None:
    msg = status(1, T0, "online")
    assert decode_json(_rec(encode(msg), topic="edgeloop.status")) == msg


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not_json"),
        (b'{"type": "result", "v": 99}', "unknown_type"),
        (b'{"type": "result", "v": 1, "id": "x"}', "invalid"),
        (b"[1, 2]", "invalid"),
        (b"x" * (300 * 1024), "oversize"),
    ],
)
def test_decode_json_rejects_with_a_reason(value: bytes, reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_json(_rec(value), expect=ResultV1)
    assert info.value.reason == reason
    assert info.value.where == "edgeloop.results[2]@17"


def test_a_valid_message_of_the_wrong_type_on_a_topic_is_invalid() -> None:
    with pytest.raises(SchemaError) as info:
        decode_json(_rec(encode(status(1, T0, "online"))), expect=ResultV1)
    assert info.value.reason == "invalid"
    assert "'status'" in info.value.message
    assert "'result'" in info.value.message
    assert "edgeloop.results" in info.value.message


def test_a_tombstone_is_invalid() -> None:
    with pytest.raises(SchemaError) as info:
        decode_json(Record("edgeloop.status", 0, 3, b"cam-01", None), expect=StatusV1)  # type: ignore[arg-type]
    assert info.value.reason == "invalid"
    assert "tombstone" in info.value.message


# --- frames ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def picture() -> bytes:
    return jpeg(1)


def test_decode_frame_ignores_the_bridge_trace_headers(picture: bytes) -> None:
    meta = frame_meta(picture)
    record = frame_record(picture, meta)
    assert any(k == "mqtt.topic" for k, _ in record.headers)
    assert decode_frame(record) == meta


def test_decode_frame_accepts_trailing_padding_after_the_end_marker(picture: bytes) -> None:
    data = picture + b"\x00\x00"
    meta = frame_meta(data)
    assert decode_frame(frame_record(data, meta)).size == len(data)


def test_a_size_other_than_announced_is_a_corrupt_frame(picture: bytes) -> None:
    meta = frame_meta(picture)
    cut = picture[:-100] + b"\xff\xd9"  # still ends like a JPEG, but shorter
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(cut, meta))
    assert info.value.reason == "corrupt_frame"
    assert str(len(picture)) in info.value.message
    assert str(len(cut)) in info.value.message


def test_a_frame_without_end_marker_is_corrupt(picture: bytes) -> None:
    truncated = picture[: len(picture) // 2]
    meta = frame_meta(truncated)  # the announced size matches: only the bytes are bad
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(truncated, meta))
    assert info.value.reason == "corrupt_frame"
    assert "EOI" in info.value.message


def test_a_frame_without_start_marker_is_corrupt(picture: bytes) -> None:
    data = b"GIF89a" + picture[6:]
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(data, frame_meta(data)))
    assert info.value.reason == "corrupt_frame"


def test_headers_of_another_message_type_are_invalid(picture: bytes) -> None:
    st = status(1, T0, "online")
    headers = [(k, v.encode()) for k, v in to_properties(st)]
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(picture, frame_meta(picture), headers=headers))
    assert info.value.reason == "invalid"
    assert "'status'" in info.value.message


def test_headers_without_a_type_are_an_unknown_type(picture: bytes) -> None:
    headers = [(k, v) for k, v in frame_headers(frame_meta(picture)) if k != "type"]
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(picture, frame_meta(picture), headers=headers))
    assert info.value.reason == "unknown_type"


def test_frame_headers_with_a_bad_field_are_invalid(picture: bytes) -> None:
    headers = [(k, b"-5" if k == "width" else v) for k, v in frame_headers(frame_meta(picture))]
    with pytest.raises(SchemaError) as info:
        decode_frame(frame_record(picture, frame_meta(picture), headers=headers))
    assert info.value.reason == "invalid"
    assert "width" in info.value.message


def test_an_oversize_frame_is_rejected_before_its_headers_are_read() -> None:
    data = b"\xff\xd8" + b"\x00" * MAX_FRAME_BYTES + b"\xff\xd9"
    with pytest.raises(SchemaError) as info:
        decode_frame(Record("edgeloop.frames", 0, 0, b"cam-01", data, ()))
    assert info.value.reason == "oversize"


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letter_keeps_the_original_key_and_bytes() -> None:
    value = b"\x00\x01 not a message \xff"
    d = dead_letter(_rec(value), "not_json", "payload is not UTF-8 JSON", component="cloud/w1/x")
    assert d.key == b"cam-01"
    assert d.value == value
    assert d.reason == "not_json"
    h = dict(d.headers)
    assert h["dlq.reason"] == b"not_json"
    assert h["dlq.detail"] == b"payload is not UTF-8 JSON"
    assert h["dlq.source"] == b"edgeloop.results[2]@17"
    assert h["dlq.component"] == b"cloud/w1/x"
    assert h["dlq.size"] == str(len(value)).encode()
    assert h["dlq.type"] == b"dead_letter"
    assert int(h["dlq.received_ts"]) > T0
    assert all(k.startswith("dlq.") for k, _ in d.headers)


def test_dead_letter_of_a_keyless_record_and_a_long_detail() -> None:
    d = dead_letter(_rec(b"{}", key=None), "invalid", "x" * 10_000, component="c" * 500)
    h = dict(d.headers)
    assert d.key == b"unknown"
    assert len(h["dlq.detail"]) == 4096
    assert len(h["dlq.component"]) == 128


def test_dead_letter_headers_decode_back_to_their_metadata() -> None:
    d = dead_letter(_rec(b"abc"), "processing_error", "boom", component="w")
    meta = {k.removeprefix("dlq."): v.decode() for k, v in d.headers}
    assert meta["reason"] == "processing_error"
    assert meta["detail"] == "boom"
    assert int(meta["received_ts"]) >= T0 - NS


# --- anything at all: a clear SchemaError or a message, never another exception -------------

_HEADER = st.tuples(
    st.sampled_from(["type", "v", "id", "site", "device", "size", "model.name", "x", "width"]),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=2048), headers=st.lists(_HEADER, max_size=12))
def test_any_record_decodes_or_gives_a_reason(value: bytes, headers: list) -> None:
    record = Record("edgeloop.frames", 0, 1, b"k", value, tuple(headers))
    for decode in (decode_json, decode_frame):
        try:
            decode(record)
        except SchemaError as exc:
            assert exc.reason in {
                "oversize",
                "not_json",
                "unknown_type",
                "invalid",
                "corrupt_frame",
            }, exc.reason
        letter = dead_letter(record, "invalid", "x", component="test")
        assert letter.value == value, "the dead letter keeps the bytes"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_valid_frame_with_its_bytes_mangled_is_corrupt_not_a_crash(data: st.DataObject) -> None:
    body = jpeg(3)
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    mangled = body[:cut] + data.draw(st.binary(max_size=8))
    meta = frame_meta(body)
    record = Record("edgeloop.frames", 0, 1, b"cam-01", mangled, tuple(frame_headers(meta)))
    try:
        got = decode_frame(record)
    except SchemaError as exc:
        assert exc.reason == "corrupt_frame"
    else:  # same size and intact markers: the teacher's decode looks at the pixels
        assert len(mangled) == len(body)
        assert got == meta
