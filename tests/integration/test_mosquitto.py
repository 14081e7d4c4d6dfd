"""MQTT v5 round trips against the real Mosquitto."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.schemas import (
    decode,
    encode,
    from_properties,
    to_properties,
)
from pipeline.topics import Stream, mqtt_topic


def test_qos1_publish_subscribe_with_schema(mqtt_factory, unique, result_factory):
    topic = mqtt_topic("plant-a", unique, Stream.RESULT)
    sub = mqtt_factory()
    sub.subscribe(topic)
    pub = mqtt_factory()
    sent = [result_factory(device=unique) for _ in range(20)]
    for msg in sent:
        info = pub.client.publish(topic, encode(msg), qos=1)
        info.wait_for_publish(5)
        assert info.rc == 0
    got = sub.wait_for(20)
    assert [decode(m.payload) for m in got] == sent
    assert all(m.qos == 1 for m in got)


def test_frame_bytes_with_user_properties(mqtt_factory, unique, frame_meta_factory):
    topic = mqtt_topic("plant-a", unique, Stream.FRAME)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    meta = frame_meta_factory(device=unique, score=0.51, size=len(jpeg), phash="00ff00ff00ff00ff")
    sub = mqtt_factory()
    sub.subscribe(topic)
    pub = mqtt_factory()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = to_properties(meta)
    props.ContentType = "image/jpeg"
    pub.client.publish(topic, jpeg, qos=1, properties=props).wait_for_publish(5)
    (msg,) = sub.wait_for(1)
    assert msg.payload == jpeg
    assert msg.properties.ContentType == "image/jpeg"
    assert from_properties(msg.properties.UserProperty) == meta


def test_persistent_session_queues_while_away(mqtt_factory, unique, result_factory):
    """The bridge relies on this: messages published while it is away are kept for it."""
    topic = mqtt_topic("plant-a", unique, Stream.RESULT)
    client_id = f"{unique}-sub"
    first = mqtt_factory(client_id, clean_start=False, session_expiry=300)
    first.subscribe(topic)
    first.client.disconnect()
    first.client.loop_stop()
    pub = mqtt_factory()
    sent = [result_factory(device=unique) for _ in range(5)]
    for msg in sent:
        pub.client.publish(topic, encode(msg), qos=1).wait_for_publish(5)
    again = mqtt_factory(client_id, clean_start=False, session_expiry=300)
    got = again.wait_for(5)
    assert [decode(m.payload) for m in got] == sent
