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

from cloud_stream.bridge.mqtt_client import (
    BatchingClient,
    BufferedSocket,
    parse_publishes,
    supported,
)


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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + _varint(len(body)) + body


def test_parse_publishes_stops_at_what_paho_must_handle():
    plain = _packet(0x32, _publish_packet(b"a/b", 1, b"one"))
    dup = _packet(0x3A, _publish_packet(b"a/c", 2, b"two"))
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v")]
    with_props = _packet(0x32, _publish_packet(b"a/d", 3, b"three", props.pack()))
    out: list = []
    buf = plain + dup + with_props + plain
    pos = parse_publishes(buf, 0, out)
    assert pos == len(plain + dup)
    assert out == [("a/b", 1, 1, False, b"one", None), ("a/c", 2, 1, True, b"two", None)]
    # Incomplete, other packet types, QoS 0 and 2, bad UTF-8: nothing parsed.
    for data in (
        plain[:-1],
        b"\xd0\x00",  # PINGRESP
        _packet(0x30, b"\x00\x03a/bzero"),
        _packet(0x34, _publish_packet(b"a/b", 1, b"qos2")),
        _packet(0x32, _publish_packet(b"a/\xff", 1, b"x")),
        b"\x32\xff\xff\xff\xff\x01",  # a length of more than 4 bytes
    ):
        out = []
        assert parse_publishes(data, 0, out) == 0
        assert out == []


_TOPICS = st.sampled_from([b"edgeloop/v1/s/d1/result", b"edgeloop/v1/s/d2/telemetry", b"x"])


@st.composite
def _packets(draw):
    """A stream of PUBLISH packets (some with properties, some QoS 0) and PINGRESPs."""
    packets, expected = [], []
    for mid in range(1, draw(st.integers(1, 30)) + 1):
        kind = draw(st.sampled_from(["plain", "plain", "dup", "props", "qos0", "ping"]))
        topic, payload = draw(_TOPICS), draw(st.binary(max_size=3000))
        if kind == "ping":
            packets.append(b"\xd0\x00")
            continue
        if kind == "qos0":
            body = struct.pack("!H", len(topic)) + topic + b"\x00" + payload
            packets.append(_packet(0x30, body))
            expected.append((topic.decode(), 0, payload))
            continue
        props = b"\x00"
        if kind == "props":
            p = Properties(PacketTypes.PUBLISH)
            p.UserProperty = [("n", str(mid))]
            props = p.pack()
        header = 0x3A if kind == "dup" else 0x32
        packets.append(_packet(header, _publish_packet(topic, mid, payload, props)))
        expected.append((topic.decode(), mid, payload))
    return b"".join(packets), expected


@settings(max_examples=60, deadline=None)
@given(stream=_packets(), chunk=st.integers(1, 5000))
def test_batched_reads_deliver_every_message_once_in_order(stream, chunk):
    """Whatever the packet mix and however TCP cuts it, each message arrives once, in order."""
    data, expected = stream
    got: list = []
    client = _client([])
    client.on_message = lambda _c, _u, m: got.append((m.topic, m.mid, bytes(m.payload)))
    client.on_publish_batch = lambda _c, items: got.extend(
        (t, m, p) for t, m, _q, _d, p, _ in items
    )
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        client._sock = BufferedSocket(b)
        for start in range(0, len(data), chunk):
            a.sendall(data[start : start + chunk])
            client.loop_read()
        for _ in range(5):
            client.loop_read()
    finally:
        a.close()
        b.close()
    assert got == expected


def test_device_messages_come_as_one_batch_per_read():
    batches: list = []
    client = _client([])
    client.on_publish_batch = lambda _c, items: batches.append(items)
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        client._sock = BufferedSocket(b)
        a.sendall(b"".join(_packet(0x32, _publish_packet(b"t", m, b"p")) for m in range(1, 101)))
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    finally:
        a.close()
        b.close()
    assert [len(batch) for batch in batches] == [100]
    assert [item[1] for item in batches[0]] == list(range(1, 101))
