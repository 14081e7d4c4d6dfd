"""Property tests: every message round-trips; malformed input gets a clear SchemaError."""

from __future__ import annotations

import contextlib
import json
import math

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import SchemaError
from pipeline.schemas import decode, encode, from_properties, to_properties
from pipeline.schemas.codec import MESSAGE_TYPES
from pipeline.schemas.jsonschema import generate_schemas
from tests.pipeline.strategies import frames, messages

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_SCHEMAS = generate_schemas()


@SETTINGS
@given(messages)
def test_json_roundtrip(msg):
    assert decode(encode(msg)) == msg


@SETTINGS
@given(messages)
def test_properties_roundtrip(msg):
    assert from_properties(to_properties(msg)) == msg


@SETTINGS
@given(frames)
def test_frame_properties_are_strings(meta):
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in to_properties(meta))


@SETTINGS
@given(messages)
def test_encoded_messages_match_published_json_schema(msg):
    """What we send is what we tell data teams we send."""
    doc = json.loads(encode(msg))
    name = f"{doc['type']}.v{doc['v']}.schema.json"
    jsonschema.validate(doc, _SCHEMAS[name])
    jsonschema.validate(doc, _SCHEMAS["message.schema.json"])


def _mutations(doc: dict) -> st.SearchStrategy[tuple[str, dict]]:
    keys = sorted(k for k in doc if k not in ("type", "v"))
    junk = st.one_of(
        st.text(max_size=5),
        st.integers(),
        # Finite only: json.dumps writes inf as "Infinity", which is not JSON at all
        # (test_nan_and_infinity_are_rejected covers that case).
        st.floats(allow_nan=False, allow_infinity=False),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.none(),
        st.booleans(),
    )

    def drop(k: str) -> tuple[str, dict]:
        return ("drop", {kk: vv for kk, vv in doc.items() if kk != k})

    def extra(name: str) -> tuple[str, dict]:
        return ("extra", {**doc, f"x_{name}": 1})

    def replace(args: tuple[str, object]) -> tuple[str, dict]:
        k, v = args
        return ("replace", {**doc, k: v})

    return st.one_of(
        st.sampled_from(keys).map(drop),
        st.text("abc", min_size=1, max_size=5).map(extra),
        st.tuples(st.sampled_from(keys), junk).map(replace),
        st.tuples(st.sampled_from(keys), st.just(10**30)).map(replace),
        st.tuples(st.sampled_from(keys), st.just([[[[[[[[[[[[1]]]]]]]]]]]])).map(replace),
    )


@SETTINGS
@given(st.data())
def test_mutated_messages_fail_cleanly(data):
    msg = data.draw(messages)
    doc = json.loads(encode(msg))
    kind, bad = data.draw(_mutations(doc))
    raw = json.dumps(bad).encode()
    try:
        out = decode(raw)
    except SchemaError as exc:
        assert exc.reason in {"invalid", "unknown_type"}
        assert str(exc)
        return
    # Some replacements are still valid (e.g. an optional field set to None,
    # or the same value drawn again); then the result must equal a re-validation.
    assert kind in {"replace", "drop"}
    assert encode(out)


@SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(raw):
    try:
        decode(raw)
    except SchemaError as exc:
        assert exc.reason in {"not_json", "invalid", "unknown_type"}


@SETTINGS
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_crashes(obj):
    with contextlib.suppress(SchemaError):
        decode(json.dumps(obj))


@pytest.mark.parametrize("tag", sorted(MESSAGE_TYPES))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(tag, value):
    type_, v = tag.split("/")
    raw = json.dumps({"type": type_, "v": int(v), "score": value, "latency_ms": value})
    with pytest.raises(SchemaError) as info:
        decode(raw)
    assert info.value.reason == "not_json"
    assert "NaN" in str(info.value) or "Infinity" in str(info.value)


def test_deep_nesting_is_rejected():
    with pytest.raises(SchemaError) as info:
        decode("[" * 50_000 + "]" * 50_000, max_bytes=1_000_000)
    assert info.value.reason == "not_json"


def test_huge_integer_text_is_rejected():
    with pytest.raises(SchemaError):
        decode('{"type": "result", "v": 1, "seq": ' + "9" * 5000 + "}")


def test_oversize_is_rejected_before_parsing():
    with pytest.raises(SchemaError) as info:
        decode(b"{" * 300_000)
    assert info.value.reason == "oversize"
    assert "300000 bytes" in str(info.value)
