"""Plain-text tables and the cell formats of the operator tools.

Cells come from the database, so they may hold anything: control characters
(newlines, terminal escape sequences) are shown as ``\\xHH`` and never reach the
terminal raw, and wide (East Asian) characters count as two columns.
"""

from __future__ import annotations

__all__ = [
    "format_age",
    "format_number",
    "format_time",
    "render_table",
    "sanitize",
    "text_width",
]

import math
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

_ELLIPSIS = "…"


def sanitize(value: str) -> str:
    """``value`` with every control or format character replaced by ``\\xHH``/``\\uHHHH``."""
    out = []
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(value: str) -> int:
    """Columns ``value`` takes on a terminal."""
    return sum(_char_width(ch) for ch in value)


def _truncate(value: str, width: int) -> str:
    if text_width(value) <= width:
        return value
    out, used = [], 0
    for ch in value:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + _ELLIPSIS


def _pad(value: str, width: int, *, right: bool) -> str:
    fill = " " * (width - text_width(value))
    return fill + value if right else value + fill


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    max_widths: dict[str, int] | None = None,
    right: Sequence[str] = (),
    gap: str = "  ",
) -> str:
    """Render ``rows`` under ``headers`` as aligned columns, without a trailing newline.

    Args:
        headers: Column titles.
        rows: One sequence of cell strings per row, as long as ``headers``.
        max_widths: Longest width of a named column; longer cells end in ``…``.
        right: Names of the columns aligned to the right (numbers).
        gap: Text between two columns.

    Raises:
        ValueError: a row has more or fewer cells than there are headers.
    """
    limits = max_widths or {}
    cells: list[list[str]] = []
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells for {len(headers)} headers")
        cells.append(
            [
                _truncate(sanitize(c), limits[h]) if h in limits else sanitize(c)
                for h, c in zip(headers, row, strict=True)
            ]
        )
    titles = [sanitize(h) for h in headers]
    widths = [
        max([text_width(titles[i])] + [text_width(r[i]) for r in cells])
        for i in range(len(headers))
    ]
    aligned = {i for i, h in enumerate(headers) if h in right}

    def line(values: Sequence[str]) -> str:
        padded = [_pad(v, widths[i], right=i in aligned) for i, v in enumerate(values)]
        return gap.join(padded).rstrip()

    return "\n".join([line(titles)] + [line(r) for r in cells])


def format_time(value: datetime | None) -> str:
    """``value`` in UTC as ISO 8601 to the second, e.g. ``2026-01-31T12:00:05Z``; ``-`` if none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_age(seconds: float | None) -> str:
    """A short age: ``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``-`` if unknown.

    Ages below zero (a clock ahead of ours) read ``in the future``.
    """
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < -1:
        return "in the future"
    s = max(0, int(seconds))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def format_number(value: object, *, digits: int = 4) -> str:
    """A compact number: integers as is, floats to ``digits`` significant digits; ``-`` if none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)
