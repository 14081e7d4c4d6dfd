"""Driving a paho client from our own thread: select() on its socket and a wake-up pipe.

paho's external-loop API (``loop_read``, ``loop_write``, ``loop_misc``) lets one
thread own the client completely; :class:`Wakeup` lets other threads interrupt
that thread's ``select()`` when they have work for it.
"""

from __future__ import annotations

__all__ = ["TICK_S", "Wakeup", "pump_until", "step"]

import contextlib
import select
import socket
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

#: paho's keep-alive bookkeeping wants a call about once a second.
TICK_S = 1.0


class Wakeup:
    """A self-pipe: any thread calls :meth:`notify`; the I/O thread selects on it."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._pending = False

    def fileno(self) -> int:
        """For ``select()``."""
        return self._r.fileno()

    def notify(self) -> None:
        """Wake the selecting thread; cheap when a wake-up is already on its way."""
        if self._pending:
            return
        self._pending = True
        with contextlib.suppress(OSError):  # buffer full (already awake) or closed
            self._w.send(b"\0")

    def clear(self) -> None:
        """Consume wake-ups; call before looking for work, so none is missed."""
        self._pending = False
        with contextlib.suppress(OSError):
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        """Close both ends; later notifications do nothing."""
        self._pending = True
        self._r.close()
        self._w.close()


def step(client: mqtt.Client, wakeup: Wakeup, timeout: float) -> None:
    """Wait up to ``timeout`` s for the socket or a wake-up, then let paho read and write."""
    sock = client.socket()
    if sock is None:
        return
    # TLS may hold decrypted bytes that select() cannot see.
    tls_pending = bool(getattr(sock, "pending", lambda: 0)())
    fd, wake_fd = sock.fileno(), wakeup.fileno()
    wlist = [fd] if client.want_write() else []
    try:
        readable, writable, _ = select.select(
            [fd, wake_fd], wlist, [], 0.0 if tls_pending else timeout
        )
    except (OSError, ValueError):
        readable, writable = [fd], []  # a closed socket: let paho find out
    if wake_fd in readable:
        wakeup.clear()
    if fd in readable or tls_pending:
        client.loop_read()
    if client.socket() is not None and (fd in writable or client.want_write()):
        client.loop_write()
    if client.socket() is not None:
        client.loop_misc()


def pump_until(client: mqtt.Client, done: Callable[[], bool], timeout: float) -> bool:
    """Run paho's reads and writes until ``done()``; False if ``timeout`` s passed first."""
    deadline = time.monotonic() + timeout
    while not done():
        sock = client.socket()
        left = deadline - time.monotonic()
        if sock is None or left <= 0:
            return done()
        wlist = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock], wlist, [], min(left, TICK_S))
        except (OSError, ValueError):
            return done()
        if readable:
            client.loop_read()
        if client.socket() is not None and (writable or client.want_write()):
            client.loop_write()
    return True
