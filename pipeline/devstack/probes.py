"""Health probes that speak just enough of each protocol, with the stdlib only."""

from __future__ import annotations

__all__ = ["http_json", "kafka_api_versions", "mqtt_connect", "port_open"]

import json
import socket
import struct
import urllib.error
import urllib.request
from typing import Any


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


def mqtt_connect(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Send an MQTT v5 CONNECT; return None on a successful CONNACK, else the problem."""
    client_id = b"edgeloop-devstack-probe"
    variable = b"\x00\x04MQTT\x05\x02\x00\x0a\x00"  # v5, clean start, keepalive 10, no props
    payload = struct.pack("!H", len(client_id)) + client_id
    body = variable + payload
    packet = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            head = _recv_exact(sock, 2)
            if head[0] != 0x20:
                return f"unexpected packet type {head[0]:#x} instead of CONNACK"
            rest = _recv_exact(sock, head[1])
            reason = rest[1]
            sock.sendall(b"\xe0\x00")  # DISCONNECT
            return None if reason == 0 else f"CONNACK reason code {reason:#x}"
    except (OSError, ConnectionError) as exc:
        return str(exc) or type(exc).__name__


def kafka_api_versions(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Send a Kafka ApiVersions v0 request; None when the broker answers without error."""
    client_id = b"edgeloop-devstack"
    correlation = 7
    header = struct.pack("!hhih", 18, 0, correlation, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!i", len(header)) + header)
            (size,) = struct.unpack("!i", _recv_exact(sock, 4))
            body = _recv_exact(sock, size)
            corr, error = struct.unpack("!ih", body[:6])
            if corr != correlation:
                return f"correlation id {corr} does not match"
            return None if error == 0 else f"ApiVersions error code {error}"
    except (OSError, ConnectionError, struct.error) as exc:
        return str(exc) or type(exc).__name__


def http_json(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """Call a JSON HTTP API; return the status code and the decoded body (or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our loopback URLs
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")
