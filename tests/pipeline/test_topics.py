"""Topic builders and parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import TopicError
from pipeline.topics import (
    KafkaTopics,
    Stream,
    check_kafka_topic,
    mqtt_filter,
    mqtt_topic,
    parse_mqtt_topic,
    shared_filter,
)

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@given(ids, ids, st.sampled_from(list(Stream)))
def test_build_parse_roundtrip(site, device, stream):
    topic = mqtt_topic(site, device, stream)
    addr = parse_mqtt_topic(topic)
    assert (addr.site, addr.device, addr.stream) == (site, device, stream)
    assert addr.topic == topic
    assert "+" not in topic
    assert "#" not in topic


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "$SYS", "", "x" * 65, "sp ace", "é"])
def test_publish_topics_refuse_unsafe_ids(bad):
    with pytest.raises(TopicError) as info:
        mqtt_topic("plant", bad, Stream.RESULT)
    assert "hint" in str(info.value)


@pytest.mark.parametrize(
    "topic",
    ["other/v1/a/b/result", "edgeloop/v1/a/b", "edgeloop/v1/a/b/bogus", "edgeloop/v1/a/+/result"],
)
def test_parse_rejects_foreign_topics(topic):
    with pytest.raises(TopicError):
        parse_mqtt_topic(topic)


def test_ota_report_has_two_levels():
    addr = parse_mqtt_topic("edgeloop/v1/plant/cam/ota/report")
    assert addr.stream is Stream.OTA_REPORT


def test_filters_and_shared_subscriptions():
    assert mqtt_filter(Stream.RESULT) == "edgeloop/v1/+/+/result"
    assert mqtt_filter("ota/report", site="p1") == "edgeloop/v1/p1/+/ota/report"
    assert shared_filter("bridge", "edgeloop/v1/+/+/result") == (
        "$share/bridge/edgeloop/v1/+/+/result"
    )
    with pytest.raises(TopicError):
        shared_filter("a/b", "x")


def test_kafka_topic_names():
    for name in KafkaTopics.ALL:
        assert check_kafka_topic(name) == name
    for bad in ("", "a b", "x" * 250, ".."):
        with pytest.raises(TopicError):
            check_kafka_topic(bad)
