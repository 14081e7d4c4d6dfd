"""A small TCP proxy for fault tests: put it between a client and a shared service, cut it.

The shared services (Kafka, InfluxDB, Mosquitto) serve other tests at the same
time, so fault tests never stop them; they connect through a ``TcpProxy`` and
cut that instead::

    with TcpProxy("127.0.0.1", 8086) as proxy:
        client = make_client(f"http://127.0.0.1:{proxy.port}")
        proxy.cut()      # live connections closed, new ones refused
        ...
        proxy.resume()   # accepting again, on the same port

Threads and the standard library only.
"""

from __future__ import annotations

__all__ = ["TcpProxy"]

import contextlib
import socket
import threading
from collections.abc import Callable


def _kill(sock: socket.socket) -> None:
    """Close a socket another thread may be blocked on (shutdown wakes it, close frees it)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards every connection on ``127.0.0.1:port`` to ``target_host:target_port``.

    Args:
        target_host: Host of the real service.
        target_port: Port of the real service.
        connect_timeout_s: How long to wait for the service when a client connects.

    Attributes:
        port: The port the proxy listens on (a free one, chosen at construction).
        accepted: Client connections accepted so far.
    """

    def __init__(self, target_host: str, target_port: int, *, connect_timeout_s: float = 5.0):
        self.target = (target_host, target_port)
        self.connect_timeout_s = connect_timeout_s
        self.accepted = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._started = False
        self._cut = False

    # --- control ----------------------------------------------------------------
    def start(self) -> TcpProxy:
        """Start accepting connections."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            listener = self._listener
        if listener is not None:
            self._spawn(self._accept_loop, listener)
        return self

    def cut(self) -> None:
        """Close every live connection and refuse new ones (connection refused)."""
        with self._lock:
            self._cut = True
            listener, self._listener = self._listener, None
            conns = list(self._conns)
            self._conns.clear()
        if listener is not None:
            _kill(listener)
        for conn in conns:
            _kill(conn)

    def resume(self) -> None:
        """Accept connections again, on the same port, after ``cut()``."""
        with self._lock:
            if not self._cut:
                return
            self._cut = False
            self._listener = listener = self._listen(self.port)
            started = self._started
        if started:
            self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        """Cut everything and wait for the proxy's threads to end."""
        self.cut()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    @property
    def live(self) -> int:
        """Sockets currently open through the proxy (two per connection)."""
        with self._lock:
            return len(self._conns)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- internals --------------------------------------------------------------
    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        return listener

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return  # the listener was closed by cut()/stop()
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout_s)
            except OSError:
                _kill(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._cut or self._listener is not listener:
                    refused = True
                else:
                    refused = False
                    self.accepted += 1
                    self._conns.update((client, upstream))
            if refused:
                _kill(client)
                _kill(upstream)
                continue
            finished = [0]  # directions of this pair that have ended
            self._spawn(self._pump, client, upstream, finished)
            self._spawn(self._pump, upstream, client, finished)

    def _pump(self, src: socket.socket, dst: socket.socket, finished: list[int]) -> None:
        try:
            while True:
                data = src.recv(65_536)
                if not data:
                    # Half-close: pass the end of this direction on, keep the other open.
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    break
                dst.sendall(data)
        except OSError:
            _kill(src)
            _kill(dst)
        with self._lock:
            finished[0] += 1
            last = finished[0] == 2
            if last:
                self._conns.discard(src)
                self._conns.discard(dst)
        if last:  # the second direction to end closes the pair
            _kill(src)
            _kill(dst)
