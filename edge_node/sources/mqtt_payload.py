"""Parsing of the JSON sensor payloads that the ``mqtt`` source receives.

Two shapes are accepted::

    {"ts": 1732600000.25, "values": {"temperature_c": 41.2, "current_a": 3.1}}
    {"ts": 1732600000250000000, "rate_hz": 2048, "values": {"vibration_g": [0.1, ...]}}

``ts`` is the time of the (first) sample: epoch seconds (int or float) or epoch
nanoseconds (an int above 1e14). NaN, inf and null values become NaN.
"""

from __future__ import annotations

__all__ = ["PayloadError", "Reading", "parse_payload"]

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_NS_THRESHOLD = 1e14  # above this an integer ts is nanoseconds (1e14 s is year 3.17 million)


class PayloadError(ValueError):
    """A payload is not a valid reading; ``reason`` is a short code for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reading:
    """Rows parsed from one payload.

    Attributes:
        ts_ns: Time of the first row, UTC ns.
        rate_hz: Sample rate the payload declared, or None.
        values: float64 array (rows, channels) in config order; NaN where missing or bad.
        missing: Channels the payload did not carry.
        unknown: Channels the payload carried that the config does not name.
    """

    ts_ns: int
    rate_hz: float | None
    values: np.ndarray
    missing: tuple[str, ...]
    unknown: tuple[str, ...]


def _ts_ns(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError("bad_ts", "'ts' must be epoch seconds or epoch nanoseconds")
    if not math.isfinite(raw) or raw <= 0:
        raise PayloadError("bad_ts", f"'ts' {raw!r} is not a positive finite time")
    if isinstance(raw, int) and raw > _NS_THRESHOLD:
        return raw
    if raw > _NS_THRESHOLD:
        raise PayloadError("bad_ts", "'ts' in nanoseconds must be an integer")
    if isinstance(raw, int):
        return raw * 1_000_000_000
    # A float epoch in seconds resolves about 0.2 us: round to whole microseconds so a
    # ts written with up to six decimals converts exactly.
    return round(raw * 1_000_000) * 1000


def _number(raw: object, channel: str) -> float:
    if raw is None:
        return math.nan
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError("non_numeric", f"value of {channel!r} is not a number: {raw!r:.40}")
    value = float(raw)
    return value if math.isfinite(value) else math.nan


def _rate(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < math.inf:
        raise PayloadError("shape", f"'rate_hz' {raw!r} is not a positive number")
    return float(raw)


def _rows(values: dict[str, Any]) -> int | None:
    """Rows of a block payload, or None for a single reading."""
    if not values:
        raise PayloadError("shape", "'values' is empty")
    lists = [isinstance(v, list) for v in values.values()]
    if not any(lists):
        return None
    if not all(lists):
        raise PayloadError("shape", "'values' mixes lists (a block) and single values")
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise PayloadError("shape", "block lists must be non-empty and of equal length")
    return lengths.pop()


def parse_payload(payload: bytes, channels: list[str], *, max_bytes: int) -> Reading:
    """Parse and validate one payload.

    Args:
        payload: The raw MQTT payload.
        channels: Channel names in column order.
        max_bytes: Largest payload accepted.

    Returns:
        The rows of the payload.

    Raises:
        PayloadError: With ``reason`` one of ``oversize``, ``not_json``, ``shape``,
            ``bad_ts``, ``non_numeric``.
    """
    if len(payload) > max_bytes:
        raise PayloadError("oversize", f"payload of {len(payload)} bytes > {max_bytes}")
    try:
        doc = json.loads(payload.decode("utf-8"))  # RFC 8259: JSON on the wire is UTF-8
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise PayloadError("not_json", f"payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("values"), dict):
        raise PayloadError("shape", "expected an object with 'ts' and a 'values' object")
    if "ts" not in doc:
        raise PayloadError("shape", "missing 'ts' (time of the first sample)")
    if extra := set(doc) - {"ts", "values", "rate_hz"}:
        raise PayloadError("shape", f"unexpected keys {sorted(extra)}")
    ts_ns = _ts_ns(doc["ts"])
    rate = _rate(doc.get("rate_hz"))
    values: dict[str, Any] = doc["values"]
    rows = _rows(values)
    out = np.full((rows or 1, len(channels)), np.nan, dtype=np.float64)
    for col, name in enumerate(channels):
        if name in values:
            raw = values[name]
            out[:, col] = [_number(v, name) for v in raw] if rows else _number(raw, name)
    return Reading(
        ts_ns=ts_ns,
        rate_hz=rate,
        values=out,
        missing=tuple(c for c in channels if c not in values),
        unknown=tuple(sorted(set(values) - set(channels))),
    )
