"""A paho client that reads and acknowledges in batches.

Stock paho 2.x costs the bridge about half its CPU in the read path: for every
incoming PUBLISH it runs one ``select()`` and three ``recv()`` calls (command
byte, length bytes, body), and every PUBACK is its own wake-up of the network
thread and its own ``send()``. This subclass keeps paho's protocol handling and
changes only the I/O around it:

- TCP and TLS sockets are wrapped in :class:`BufferedSocket`, which fills a
  user space buffer with one ``recv()`` (over TLS: one record) and reports what
  is left through ``pending()`` (the hook paho already uses for TLS sockets);
- :meth:`BatchingClient.loop_read` handles every packet already received instead
  of one per ``select()``;
- :meth:`BatchingClient.ack_many` queues PUBACKs that the network thread writes
  as one packet buffer, with one wake-up per batch;
- with ``on_publish_batch`` set, QoS 1 v5 PUBLISH packets without properties
  (what devices send) are parsed straight out of the buffer and handed over as
  one list per read, not one ``on_message`` call each; anything else (other
  packets, properties such as a frame's metadata, a packet cut by the read)
  goes through paho's own code, one packet at a time (websocket transports
  keep paho's reads entirely);
- otherwise a message goes straight to ``on_message`` unless per-filter
  callbacks exist (paho walks its topic trie for every message), and a QoS 1
  v5 PUBLISH without properties is decoded without paho's per-message
  ``Properties`` object; ``message.properties`` is then None.

It relies on paho internals (``_packet_read``, ``_packet_queue``,
``_create_socket``) that are stable across paho 2.x; :func:`supported` checks
them, and the bridge falls back to the stock client when they are missing.
"""

from __future__ import annotations

__all__ = ["BatchingClient", "BufferedSocket", "Received", "parse_publishes", "supported"]

import contextlib
import functools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

# One recv() takes up to this much: several hundred typical bridge messages.
_READ_SIZE = 256 * 1024
# Packets handled per loop_read(), so that writes (PUBACKs) and keep-alives
# still get their turn under a flood.
_READ_BATCH = 2000
_PUBACK = struct.Struct("!BBH")
_PUBACK_CMD = 0x40
_PUBLISH_QOS1 = 0x32  # PUBLISH with QoS 1; DUP (0x08) and RETAIN (0x01) masked out
_PUBLISH_MASK = 0xF6
_DUP = 0x08

Received: TypeAlias = tuple[str, int, int, bool, bytes, Any]
"""One received message: (topic, mid, qos, dup, payload, user properties or None)."""


def parse_publishes(buf: bytes, pos: int, out: list[Received]) -> int:
    """Parse the QoS 1 v5 PUBLISH packets without properties at ``buf[pos:]``.

    Stops at the first thing it does not handle (another packet type, QoS 0 or
    2, properties, invalid UTF-8, a malformed length, a packet not complete in
    ``buf``), which the caller leaves to paho.

    Returns:
        The position after the last packet parsed (``pos`` if none).
    """
    end = len(buf)
    while pos < end:
        cmd = buf[pos]
        if cmd & _PUBLISH_MASK != _PUBLISH_QOS1:
            break
        i, length, shift = pos + 1, 0, 0
        while True:  # remaining length: a varint of at most 4 bytes
            if i >= end or shift > 21:
                return pos
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        stop = i + length
        if stop > end or length < 5:
            break
        topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
        if topic_end + 3 > stop or buf[topic_end + 2] != 0:
            break  # has properties (or is malformed): paho's job
        try:
            topic = buf[i + 2 : topic_end].decode()
        except UnicodeDecodeError:
            break
        mid = (buf[topic_end] << 8) | buf[topic_end + 1]
        out.append((topic, mid, 1, bool(cmd & _DUP), buf[topic_end + 3 : stop], None))
        pos = stop
    return pos


_INTERNALS = (
    "_packet_read",
    "_packet_queue",
    "_create_socket",
    "_loop_rc_handle",
    "_handle_on_message",
    "_handle_publish",
    "_in_packet",
    "_manual_ack",
    "_protocol",
    "_in_callback_mutex",
    "_easy_log",
    "_sock",
    "_sockpairW",
    "_msgtime_mutex",
    "_last_bytes_received",
)


@functools.cache
def supported() -> bool:
    """True when this paho has the internals the batching client builds on."""
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    return all(hasattr(probe, name) for name in _INTERNALS)


class BufferedSocket:
    """A non-blocking TCP or TLS socket whose small reads are served from one large read.

    Args:
        sock: A connected socket, or a TLS socket after its handshake (paho makes
            it non-blocking right after). A TLS socket with nothing decrypted
            raises ``ssl.SSLWantReadError`` (an ``OSError``) where a plain one
            raises ``BlockingIOError``; paho handles both.
    """

    __slots__ = ("_buf", "_pos", "_sock", "_tls")

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: from the buffer, or one real read when it is empty.

        Raises:
            BlockingIOError: if the buffer and the kernel have nothing (as the socket).
        """
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._sock.recv(max(bufsize, _READ_SIZE))
            if not buf:
                return buf  # closed by the peer
            self._buf, pos = buf, 0
        end = min(pos + bufsize, len(buf))
        self._pos = end
        return buf[pos:end]

    def fill(self) -> bool:
        """Replace the (used up) buffer with one real read; False when the peer closed.

        Raises:
            BlockingIOError: if the kernel has nothing.
        """
        buf = self._sock.recv(_READ_SIZE)
        self._buf, self._pos = buf, 0
        return bool(buf)

    def pending(self) -> int:
        """Bytes received and not yet handed out (paho then skips waiting in select).

        Over TLS this includes what the TLS layer has decrypted and not yet given
        us: the kernel socket may have nothing left to select on.
        """
        waiting = len(self._buf) - self._pos
        if self._tls:
            waiting += self._sock.pending()  # type: ignore[attr-defined]
        return waiting

    def fileno(self) -> int:
        """The real socket's descriptor, for select()."""
        return self._sock.fileno()

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Write through to the socket."""
        return self._sock.send(data)

    def close(self) -> None:
        """Close the socket and drop what was buffered."""
        self._buf, self._pos = b"", 0
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # setblocking, setsockopt, getpeername...: whatever paho asks of a socket.
        return getattr(self._sock, name)


class BatchingClient(mqtt.Client):
    """paho's client with buffered reads and batched PUBACKs (see the module docs)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._acks_lock = threading.Lock()
        self._acks: list[int] = []
        self._filtered = False
        self.connect_error: str | None = None
        """Why the last connection attempt failed (see :meth:`reconnect`)."""
        self.on_publish_batch: Callable[[mqtt.Client, list[Received]], None] | None = None
        """Called with the messages of one read (see the module docs); None: ``on_message``."""

    def message_callback_add(self, sub: str, callback: Any) -> None:
        """As paho's; noted, so messages are matched against filters only when there are any."""
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        # paho builds a Properties object (a 27-entry dict, then clears it attribute
        # by attribute) for every v5 PUBLISH; most carry no properties at all.
        # Decode those here; anything else (QoS 2, properties, v3) goes to paho.
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != mqtt.MQTTv5 or qos != 1 or not self._manual_ack:
            return super()._handle_publish()
        tlen = int.from_bytes(packet[0:2], "big")
        pos = 2 + tlen
        if len(packet) < pos + 3 or packet[pos + 2] != 0:
            return super()._handle_publish()  # has properties (or is malformed)
        message = mqtt.MQTTMessage(
            int.from_bytes(packet[pos : pos + 2], "big"), bytes(packet[2:pos])
        )
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = bytes(packet[pos + 3 :])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        # paho walks its filter trie for every message, even with no filters.
        if self._filtered:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        # Websockets wrap their own framing: left as they are.
        if type(sock) is socket.socket or isinstance(sock, ssl.SSLSocket):
            return BufferedSocket(sock)
        return sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every packet already received (up to a batch), not just one."""
        handled, limit = 0, max(max_packets, _READ_BATCH)
        batch = self.on_publish_batch is not None
        while handled < limit:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if batch:
                count = self._read_publish_batch()
                if count is None:
                    break  # nothing received
                if count:
                    handled += count
                    continue
            rc = self._packet_read()
            handled += 1
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _read_publish_batch(self) -> int | None:
        """Hand the device messages at the head of the buffer over as one list.

        Returns:
            How many were handed over (0: the next packet is paho's), or None
            when nothing at all is waiting.
        """
        sock, callback = self._sock, self.on_publish_batch
        if (
            type(sock) is not BufferedSocket
            or callback is None
            or self._in_packet["command"] != 0  # paho is half-way through a packet
            or self._protocol != mqtt.MQTTv5
            or not self._manual_ack
            or self._filtered
        ):
            return 0
        if sock._pos >= len(sock._buf):
            try:
                if not sock.fill():
                    return 0  # closed: paho's read notices and reports it
            except (BlockingIOError, ssl.SSLWantReadError):
                return None
            except OSError:
                return 0  # paho's read meets it again and handles or reports it
            with self._msgtime_mutex:
                self._last_bytes_received = time.monotonic()
        received: list[Received] = []
        sock._pos = parse_publishes(sock._buf, sock._pos, received)
        if received:
            with self._in_callback_mutex:
                try:
                    callback(self, received)
                except Exception as err:
                    self._easy_log(
                        mqtt.MQTT_LOG_ERR, "Caught exception in on_publish_batch: %s", err
                    )
                    if not self.suppress_exceptions:
                        raise
        return len(received)

    def ack_many(self, mids: Iterable[int]) -> None:
        """Queue QoS 1 PUBACKs; the network thread writes them together.

        Callers must hold off once the connection that delivered ``mids`` is gone:
        :meth:`reconnect` drops acks still queued, as paho drops queued packets.
        """
        with self._acks_lock:
            was_empty = not self._acks
            self._acks.extend(mids)
            wake = was_empty and bool(self._acks)
        if wake and self._sockpairW is not None:
            with contextlib.suppress(BlockingIOError):  # already awake
                self._sockpairW.send(b"0")

    def _flush_acks(self) -> None:
        with self._acks_lock:
            mids, self._acks = self._acks, []
        if mids:
            packet = b"".join([_PUBACK.pack(_PUBACK_CMD, 2, mid) for mid in mids])
            self._packet_queue(_PUBACK_CMD, packet, 0, 1)

    def loop_write(self) -> MQTTErrorCode:
        """Queue the batched PUBACKs as one buffer, then write as paho does."""
        if self._sock is not None:
            self._flush_acks()
        return super().loop_write()

    def disconnect(self, *args: Any, **kwargs: Any) -> MQTTErrorCode:
        """Disconnect cleanly: queued PUBACKs go out before the DISCONNECT."""
        if self._sock is not None:
            self._flush_acks()
        return super().disconnect(*args, **kwargs)

    def reconnect(self) -> MQTTErrorCode:
        """Reconnect, dropping acks of the old connection (its ids mean nothing now).

        A failure is kept in ``connect_error`` (paho's ``on_connect_fail`` says only
        that it failed, not why: a refused port, a certificate that does not verify).
        """
        with self._acks_lock:
            self._acks = []
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = f"{type(exc).__name__}: {exc}"
            raise
