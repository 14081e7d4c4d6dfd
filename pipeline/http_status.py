"""A tiny HTTP server for ``/metrics`` and ``/healthz`` (stdlib only).

Edge and cloud services pass in callables: one renders Prometheus text (they own
prometheus-client), one reports health as ``(ok, details)``.
"""

from __future__ import annotations

__all__ = ["StatusServer"]

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

MetricsFn = Callable[[], tuple[bytes, str]]
HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer:
    """Serve ``/metrics`` and ``/healthz`` on a background thread.

    Args:
        host: Address to bind (loopback by default in every config).
        port: Port; 0 picks a free one (read it back from ``port``).
        metrics: Returns the exposition body and its content type.
        health: Returns whether the service is healthy and why.
    """

    def __init__(self, host: str, port: int, metrics: MetricsFn | None, health: HealthFn | None):
        self._metrics = metrics
        self._health = health
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics" and server._metrics is not None:
                    body, ctype = server._metrics()
                    self._send(200, body, ctype)
                elif self.path in ("/healthz", "/health") and server._health is not None:
                    ok, details = server._health()
                    payload = json.dumps({"ok": ok, **details}).encode()
                    self._send(200 if ok else 503, payload, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("status http: %s", format % args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="status-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
