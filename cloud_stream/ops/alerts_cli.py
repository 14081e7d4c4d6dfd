"""``edgeloop alerts``: alert events from InfluxDB, newest first, as a table or JSON lines.

Examples::

    edgeloop alerts                                   # every event of the last hour
    edgeloop alerts --open --min-severity warning     # what is still firing
    edgeloop alerts --since 2d --site plant-a --rule defect-rate --json
"""

from __future__ import annotations

__all__ = ["alert_from_row", "alert_table", "register"]

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from cloud_stream.ops.connection import (
    add_connection_options,
    duration_arg,
    influx_config_from_args,
    query_rows,
    text_arg,
)
from cloud_stream.ops.flux import SEVERITIES, AlertQuery, alerts_flux
from cloud_stream.ops.table import format_number, format_time, render_table

DEFAULT_SINCE = timedelta(hours=1)
#: ``--open`` looks further back by default: an alert may have fired long ago.
DEFAULT_OPEN_SINCE = timedelta(days=7)
HEADERS = (
    "time",
    "severity",
    "state",
    "rule",
    "subject",
    "site/line",
    "value/threshold",
    "summary",
)
#: Tags and fields of ``alert`` in the order of a ``--json`` line.
FIELDS = (
    "severity",
    "state",
    "rule",
    "subject",
    "scope",
    "site",
    "line",
    "value",
    "threshold",
    "summary",
    "id",
    "seq",
)


def _severities(text: str) -> list[str]:
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in SEVERITIES]
    if bad or not values:
        raise argparse.ArgumentTypeError(
            f"unknown severity {', '.join(bad) or repr(text)}; choose from {', '.join(SEVERITIES)}"
        )
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``edgeloop alerts``."""
    parser.add_argument(
        "--since",
        type=duration_arg,
        metavar="DURATION",
        help="look back this far: 90s, 30m, 1h, 2d (default 1h; 7d with --open)",
    )
    sev = parser.add_mutually_exclusive_group()
    sev.add_argument(
        "--severity",
        type=_severities,
        action="extend",
        metavar="LIST",
        help=f"only these severities ({','.join(SEVERITIES)}); comma-separated or repeated",
    )
    sev.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        help="only this severity and the more severe ones",
    )
    parser.add_argument(
        "--site", type=text_arg, action="append", help="only this site (repeatable)"
    )
    parser.add_argument(
        "--line", type=text_arg, action="append", help="only this line (repeatable)"
    )
    parser.add_argument(
        "--device",
        type=text_arg,
        action="append",
        help="only alerts about this device or line id, the alert subject (repeatable)",
    )
    parser.add_argument(
        "--rule", type=text_arg, action="append", help="only this rule id (repeatable)"
    )
    parser.add_argument(
        "--state",
        choices=("firing", "resolved", "all"),
        default="all",
        help="firing or resolved events, or all (default)",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="only alerts whose latest event is firing (not resolved yet)",
    )
    parser.add_argument("--limit", type=_positive, metavar="N", help="at most N rows")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_connection_options(parser)
    parser.set_defaults(func=_run)


def alert_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """One pivoted ``alert`` record as a plain dict (the ``--json`` line).

    ``time`` is ISO 8601 in UTC; fields the record lacks are ``None``; every
    ``label_<key>`` field is gathered under ``labels``.
    """
    when = row.get("_time")
    labels = {
        k.removeprefix("label_"): v
        for k, v in sorted(row.items())
        if k.startswith("label_") and v is not None
    }
    out: dict[str, Any] = {
        "time": when.isoformat().replace("+00:00", "Z") if when is not None else None
    }
    for key in FIELDS:
        out[key] = row.get(key)
    out["labels"] = labels
    return out


def alert_table(rows: list[dict[str, Any]]) -> str:
    """The table ``edgeloop alerts`` prints for pivoted ``alert`` records."""
    cells = []
    for row in rows:
        site, line = row.get("site") or "-", row.get("line")
        value, threshold = row.get("value"), row.get("threshold")
        cells.append(
            [
                format_time(row.get("_time")),
                str(row.get("severity") or "-"),
                str(row.get("state") or "-"),
                str(row.get("rule") or "-"),
                str(row.get("subject") or "-"),
                f"{site}/{line}" if line else site,
                "-"
                if value is None and threshold is None
                else f"{format_number(value)}/{format_number(threshold)}",
                str(row.get("summary") or ""),
            ]
        )
    return render_table(HEADERS, cells, max_widths={"summary": 80, "subject": 40})


def _run(args: argparse.Namespace) -> int:
    severities: tuple[str, ...] = tuple(dict.fromkeys(args.severity or ()))
    if args.min_severity:
        severities = SEVERITIES[SEVERITIES.index(args.min_severity) :]
    if args.open and args.state == "resolved":
        print(
            "error: --open lists firing alerts; it cannot be combined with --state resolved",
            file=sys.stderr,
        )
        return 2
    since = args.since or (DEFAULT_OPEN_SINCE if args.open else DEFAULT_SINCE)
    config = influx_config_from_args(args)
    query = AlertQuery(
        bucket=config.bucket,
        since=since,
        severities=severities,
        sites=tuple(args.site or ()),
        lines=tuple(args.line or ()),
        subjects=tuple(args.device or ()),
        rules=tuple(args.rule or ()),
        state=args.state,
        open_only=args.open,
        limit=args.limit,
    )
    rows = query_rows(config, alerts_flux(query))
    if args.json:
        for row in rows:
            print(json.dumps(alert_from_row(row), default=str))
        return 0
    if not rows:
        what = "open alerts" if args.open else "alerts"
        print(f"no {what} in the last {_since_text(since)} matching the filters")
        return 0
    print(alert_table(rows))
    return 0


def _since_text(since: timedelta) -> str:
    s = int(since.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"
