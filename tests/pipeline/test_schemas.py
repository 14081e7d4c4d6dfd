"""Examples of the message contracts and their error messages."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import SchemaError
from pipeline.schemas import ResultV1, StatusV1, decode, encode, from_properties, new_id, now_ns


def test_result_roundtrip_and_compact_encoding(result_factory):
    msg = result_factory(probs={"ok": 0.97, "scratch": 0.03})
    raw = encode(msg)
    assert b" " not in raw
    assert b"null" not in raw  # unset optional fields are left out
    assert decode(raw) == msg


def test_unknown_version_names_known_ones(result_factory):
    doc = json.loads(encode(result_factory()))
    doc["v"] = 2
    with pytest.raises(SchemaError) as info:
        decode(json.dumps(doc), where="edgeloop/v1/plant-a/cam-01/result")
    err = info.value
    assert err.reason == "unknown_type"
    assert "'result'/2" in str(err)
    assert "result/1" in str(err)  # the hint lists what is known
    assert "edgeloop/v1/plant-a/cam-01/result" in str(err)


def test_errors_name_every_bad_field(result_factory):
    doc = json.loads(encode(result_factory()))
    doc["score"] = "high"
    doc["seq"] = -1
    doc["colour"] = "red"
    with pytest.raises(SchemaError) as info:
        decode(json.dumps(doc))
    text = str(info.value)
    assert info.value.reason == "invalid"
    for field in ("score", "seq", "colour"):
        assert field in text


def test_strict_types_no_coercion(result_factory):
    doc = json.loads(encode(result_factory()))
    doc["seq"] = "5"
    with pytest.raises(SchemaError):
        decode(json.dumps(doc))


def test_anomaly_result_needs_window_summary(model_ref):
    with pytest.raises(ValueError, match="window summary"):
        ResultV1(
            id=new_id(),
            site="s",
            device="d",
            seq=0,
            ts=now_ns(),
            model=model_ref,
            task="anomaly",
            source="vib0",
            label="anomaly",
            score=3.2,
            route="anomalous",
            latency_ms=0.3,
        )


def test_ids_cannot_carry_topic_wildcards(result_factory):
    for bad in ("cam/1", "cam+", "#", "$SYS", "", "a" * 65, "cam 1"):
        with pytest.raises(ValueError):
            result_factory(device=bad)


def test_messages_are_frozen(result_factory):
    msg = result_factory()
    with pytest.raises(ValueError):
        msg.score = 0.1  # type: ignore[misc]


def test_status_properties_reject_unknown_type():
    with pytest.raises(SchemaError) as info:
        from_properties([("type", "gadget"), ("v", "1")])
    assert info.value.reason == "unknown_type"


def test_status_last_will_shape(model_ref):
    will = StatusV1(
        id=new_id(),
        site="s",
        device="d",
        seq=0,
        ts=now_ns(),
        state="offline",
        reason="connection lost",
        software="0.1.0",
        models=[model_ref],
    )
    assert decode(encode(will)) == will
