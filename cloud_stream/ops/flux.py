"""Flux queries of the operator tools, built from user input without Flux injection.

Every value that comes from a person (bucket, site, rule...) goes through
:func:`flux_string`, which turns it into a Flux string literal that cannot end
early: only printable ASCII other than ``"``, ``\\`` and ``$`` is written as is;
quotes and backslashes get their escapes and everything else (``$``, control
characters, newlines, non-ASCII) is written as ``\\xHH`` bytes. ``$`` is escaped
too: Flux's lexer pairs ``$`` with the character after it, so in ``$\\"`` the quote
ends the string (and the query no longer compiles); ``\\x24`` has no such effect.
Column names and numbers are ours, never the user's, and are checked anyway.
"""

from __future__ import annotations

__all__ = [
    "SEVERITIES",
    "AlertQuery",
    "alerts_flux",
    "fleet_flux",
    "flux_duration",
    "flux_string",
    "parse_duration",
]

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

#: Alert severities, least severe first.
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

#: Points are stamped with the devices' clocks, which may run ahead of this one (or
#: replay simulated time): look this far into the future too, not only up to now().
FUTURE_SLACK = "1h"

_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\", "$"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DURATION = re.compile(r"(?:\d+[smhdw])+\Z")
_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
#: Alerts are one alert while these tags stay the same; severity and state may change.
ALERT_IDENTITY = ("site", "line", "subject", "rule", "scope")


def flux_string(value: str) -> str:
    """``value`` as a Flux string literal, quotes included; safe for any input.

    Raises:
        ValueError: when ``value`` is not valid Unicode text (lone surrogates).
    """
    out = ['"']
    for ch in value:
        if ch in _SAFE:
            out.append(ch)
        elif ch in ('"', "\\"):
            out.append("\\" + ch)
        else:
            try:
                raw = ch.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{value!r} is not valid text") from exc
            out.extend(f"\\x{b:02x}" for b in raw)
    out.append('"')
    return "".join(out)


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``1h``, ``2d``, ``1w`` or a sum such as ``1h30m``.

    Raises:
        ValueError: when ``text`` is not such a duration or is zero.
    """
    value = text.strip().lower()
    if not _DURATION.match(value):
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit: "
            "90s, 30m, 1h, 2d, 1w (or a sum such as 1h30m)"
        )
    seconds = sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(value))
    if seconds <= 0:
        raise ValueError(f"{text!r} is zero; give a duration longer than 0s")
    return timedelta(seconds=seconds)


def flux_duration(value: timedelta) -> str:
    """A Flux duration literal of whole seconds (at least ``1s``), e.g. ``3600s``."""
    return f"{max(1, int(value.total_seconds()))}s"


def _column(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a column name")
    return name


def _any_of(column: str, values: Sequence[str]) -> str:
    """A filter line keeping rows whose ``column`` is one of ``values``."""
    col = _column(column)
    test = " or ".join(f"r.{col} == {flux_string(v)}" for v in values)
    return f"  |> filter(fn: (r) => {test})"


def _columns(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{_column(n)}"' for n in names) + "]"


@dataclass(frozen=True)
class AlertQuery:
    """What ``edgeloop alerts`` asks for; empty filters match everything.

    Attributes:
        bucket: Bucket to read.
        since: How far back to look.
        severities: Keep only these severities.
        sites: Keep only these sites.
        lines: Keep only these lines.
        subjects: Keep only alerts about these devices or lines.
        rules: Keep only these rule ids.
        state: ``firing``, ``resolved`` or ``all`` events.
        open_only: Keep only alerts whose latest event in the window is ``firing``.
        limit: At most this many rows (newest first); ``None`` for all.
    """

    bucket: str
    since: timedelta
    severities: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    state: Literal["firing", "resolved", "all"] = "all"
    open_only: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.severities) - set(SEVERITIES)
        if unknown:
            raise ValueError(f"unknown severity {sorted(unknown)}; use {', '.join(SEVERITIES)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.open_only and self.state == "resolved":
            raise ValueError("open alerts are firing, never resolved")


def alerts_flux(query: AlertQuery) -> str:
    """The Flux of ``query``: one row per alert event, pivoted, newest first."""
    parts = [
        f"from(bucket: {flux_string(query.bucket)})",
        f"  |> range(start: -{flux_duration(query.since)}, stop: {FUTURE_SLACK})",
        '  |> filter(fn: (r) => r._measurement == "alert")',
    ]
    if query.severities and not query.open_only:
        parts.append(_any_of("severity", query.severities))
    for column, values in (
        ("site", query.sites),
        ("line", query.lines),
        ("subject", query.subjects),
        ("rule", query.rules),
    ):
        if values:
            parts.append(_any_of(column, values))
    if query.state != "all" and not query.open_only:
        parts.append(_any_of("state", [query.state]))
    parts.append('  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')
    if query.open_only:
        # The latest event of each alert decides: open while it is a firing one.
        parts += [
            f"  |> group(columns: {_columns(ALERT_IDENTITY)})",
            '  |> sort(columns: ["_time"])',
            '  |> last(column: "_time")',
            _any_of("state", ["firing"]),
        ]
        if query.severities:  # of the latest event: an alert may change severity
            parts.append(_any_of("severity", query.severities))
    parts += ["  |> group()", '  |> sort(columns: ["_time"], desc: true)']
    if query.limit is not None:
        parts.append(f"  |> limit(n: {int(query.limit)})")
    return "\n".join(parts)


def fleet_flux(bucket: str, *, since: timedelta, sites: Sequence[str] = ()) -> str:
    """The Flux of ``edgeloop fleet``: the last value of every field, one row per device."""
    parts = [
        f"from(bucket: {flux_string(bucket)})",
        f"  |> range(start: -{flux_duration(since)}, stop: {FUTURE_SLACK})",
        '  |> filter(fn: (r) => r._measurement == "fleet")',
    ]
    if sites:
        parts.append(_any_of("site", sites))
    parts += [
        "  |> last()",
        '  |> pivot(rowKey: ["site", "device"], columnKey: ["_field"], valueColumn: "_value")',
        "  |> group()",
        '  |> sort(columns: ["site", "device"])',
    ]
    return "\n".join(parts)
