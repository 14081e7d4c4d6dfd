"""Baselines and checks around the sink: a bare line-protocol write, an exact point count.

``post_lines`` is what the cloud benchmark compares the sink against: batched
line protocol posted straight to ``/api/v2/write`` with nothing in between (no
retries, no isolation of bad lines, no metrics). ``count_points`` counts the
points of a measurement exactly, for tests and the benchmark's ``lost`` figure.
"""

from __future__ import annotations

__all__ = ["COUNT_FIELDS", "count_points", "post_lines"]

import http.client
import time
import zlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from pipeline.errors import EdgeloopError

# A field every point of the measurement has (docs/influxdb.md): counting its rows
# counts points, since Flux returns one row per field and point.
COUNT_FIELDS = {
    "result": "seq",
    "telemetry": "uptime_s",
    "status": "seq",
    "verdict": "id",
    "alert": "id",
}


def post_lines(
    url: str,
    org: str,
    bucket: str,
    token: str,
    lines: Sequence[str],
    batch: int = 5000,
    gzip: bool = True,
) -> float:
    """POST ``lines`` in batches of ``batch`` on one kept-alive connection.

    Args:
        url: Base URL of InfluxDB, e.g. ``http://127.0.0.1:8086``.
        org: Organization name.
        bucket: Bucket name.
        token: API token with write access to the bucket.
        lines: Line protocol, timestamps in ns.
        batch: Lines per request.
        gzip: Compress each request (level 1, like the sink).

    Returns:
        Seconds from the first request's encoding to the last response.

    Raises:
        EdgeloopError: when InfluxDB answers anything but success (no retry).
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port or (443 if https else 80), timeout=60)
    query = urlencode({"org": org, "bucket": bucket, "precision": "ns"})
    path = f"{parts.path.rstrip('/')}/api/v2/write?{query}"
    headers = {"Authorization": f"Token {token}", "Content-Type": "text/plain; charset=utf-8"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    try:
        started = time.perf_counter()
        for start in range(0, len(lines), batch):
            body = "\n".join(lines[start : start + batch]).encode("utf-8")
            if gzip:
                packer = zlib.compressobj(1, zlib.DEFLATED, 31)
                body = packer.compress(body) + packer.flush()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            reply = response.read()
            if response.status >= 300:
                raise EdgeloopError(
                    f"raw write answered HTTP {response.status}: "
                    f"{reply.decode('utf-8', 'replace')[:500]}",
                    where=f"InfluxDB {url} bucket {bucket!r}",
                )
        return time.perf_counter() - started
    finally:
        conn.close()


def _flux_time(value: int | str) -> str:
    """An int is UTC ns since the epoch; a str is Flux as it is (``-1h``, ``2024-...Z``)."""
    if isinstance(value, int):
        return f"time(v: {value})"
    return value


def _flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def count_points(
    client: Any,
    bucket: str,
    measurement: str,
    start: int | str,
    *,
    stop: int | str | None = None,
    field: str | None = None,
) -> int:
    """The exact number of points of ``measurement`` in ``bucket`` between start and stop.

    Flux returns one row per field of a point, so the count is of one field every
    point has (``field``, else ``COUNT_FIELDS[measurement]``). For a measurement whose
    fields are all optional (``drift``, ``fleet``), rows are pivoted into points first,
    which is exact but slower.

    Args:
        client: An ``influxdb_client.InfluxDBClient`` with read access.
        bucket: Bucket name.
        measurement: Measurement name, e.g. ``result``.
        start: Range start: UTC ns (int) or a Flux time/duration (str, e.g. ``"-1h"``).
        stop: Range end, same forms; default now. Points at ``stop`` are not counted.
        field: The field to count; default the measurement's always-present one.

    Returns:
        The number of points (0 when there are none).
    """
    stop_arg = f", stop: {_flux_time(stop)}" if stop is not None else ""
    head = (
        f"from(bucket: {_flux_string(bucket)})"
        f" |> range(start: {_flux_time(start)}{stop_arg})"
        f" |> filter(fn: (r) => r._measurement == {_flux_string(measurement)})"
    )
    field = field or COUNT_FIELDS.get(measurement)
    if field is not None:
        flux = (
            f"{head} |> filter(fn: (r) => r._field == {_flux_string(field)})"
            ' |> group() |> count(column: "_value")'
        )
        column = "_value"
    else:
        flux = (
            f'{head} |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> group() |> count(column: "_measurement")'
        )
        column = "_measurement"
    tables = client.query_api().query(flux, org=client.org)
    return sum(int(record.values[column]) for table in tables for record in table.records)
