"""The batching paho client: buffered reads, lean PUBLISH decoding, batched PUBACKs."""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_stream.bridge.mqtt_client import BatchingClient, BufferedSocket, supported


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_small_reads_come_from_one_large_read(pair):
    writer, reader = pair
    sock = BufferedSocket(reader)
    writer.sendall(b"\x30\x05hello" * 3)
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 20
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert sock.recv(100) == b"\x30\x05hello\x30\x05hello"  # never more than it has
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert sock.fileno() == reader.fileno()
    writer.close()
    assert sock.recv(1) == b""


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000), sizes=st.lists(st.integers(1, 700), min_size=1))
def test_buffered_reads_return_the_stream_unchanged(data, sizes):
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        a.sendall(data)
        sock, out, i = BufferedSocket(b), b"", 0
        while len(out) < len(data):
            out += sock.recv(sizes[i % len(sizes)])
            i += 1
        assert out == data
    finally:
        a.close()
        b.close()


def _client(received):
    client = BatchingClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    client.on_message = lambda _c, _u, msg: received.append(msg)
    return client


def _publish_packet(topic: bytes, mid: int, payload: bytes, props: bytes = b"\x00") -> bytes:
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + props + payload


@pytest.mark.parametrize("header", [0x32, 0x3A, 0x33])  # QoS 1; +DUP; +RETAIN
def test_lean_publish_decoding_matches_paho(header):
    packet = _publish_packet(b"edgeloop/v1/s/d/result", 4242, b'{"x": 1}')
    ours: list[mqtt.MQTTMessage] = []
    theirs: list[mqtt.MQTTMessage] = []
    stock = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    stock.on_message = lambda _c, _u, msg: theirs.append(msg)
    for client in (_client(ours), stock):
        client._in_packet = {"command": header, "packet": bytearray(packet)}
        assert client._handle_publish() == mqtt.MQTT_ERR_SUCCESS
    (a,), (b,) = ours, theirs
    assert (a.topic, a.mid, a.payload, a.qos, a.dup, a.retain) == (
        b.topic,
        b.mid,
        b.payload,
        b.qos,
        b.dup,
        b.retain,
    )


def test_publish_with_properties_goes_through_paho():
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("id", "abc")]
    packet = _publish_packet(b"edgeloop/v1/s/d/frame", 7, b"\xff\xd8\xff\xd9", props.pack())
    received: list[mqtt.MQTTMessage] = []
    client = _client(received)
    client._in_packet = {"command": 0x32, "packet": bytearray(packet)}
    client._handle_publish()
    (msg,) = received
    assert msg.properties.UserProperty == [("id", "abc")]
    assert msg.payload == b"\xff\xd8\xff\xd9"


def test_acks_are_written_as_one_buffer():
    client = _client([])
    client.ack_many([1, 2])
    client.ack_many([65535])
    client._flush_acks()
    (packet,) = client._out_packet
    assert packet["packet"] == b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\xff\xff"
    client._flush_acks()
    assert len(client._out_packet) == 1  # nothing new queued


def test_filtered_callbacks_still_work():
    seen: list[str] = []
    client = _client([])
    client.message_callback_add("a/#", lambda _c, _u, msg: seen.append(msg.topic))
    client._in_packet = {"command": 0x32, "packet": bytearray(_publish_packet(b"a/b", 1, b"x"))}
    client._handle_publish()
    assert seen == ["a/b"]


def test_this_paho_is_supported():
    assert supported()
