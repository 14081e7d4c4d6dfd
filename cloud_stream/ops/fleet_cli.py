"""``edgeloop fleet``: one row per device from the ``fleet`` measurement.

Each row holds the last value of every field the cloud workers wrote for the
device. A device not seen for ``--stale-after`` is marked stale.

Examples::

    edgeloop fleet
    edgeloop fleet --site plant-a --stale-after 2m
    edgeloop fleet --json
"""

from __future__ import annotations

__all__ = ["fleet_from_row", "fleet_table", "register"]

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_stream.ops.connection import (
    add_connection_options,
    duration_arg,
    influx_config_from_args,
    query_rows,
    text_arg,
)
from cloud_stream.ops.flux import fleet_flux
from cloud_stream.ops.table import format_age, format_number, format_time, render_table

DEFAULT_STALE_AFTER = timedelta(minutes=5)
#: Rows change only when a device does; a quiet device's last row may be old.
DEFAULT_SINCE = timedelta(days=30)
HEADERS = (
    "site",
    "device",
    "state",
    "model",
    "software",
    "last seen",
    "outbox",
    "escalation",
    "results",
    "stale",
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``edgeloop fleet``."""
    parser.add_argument(
        "--site", type=text_arg, action="append", help="only this site (repeatable)"
    )
    parser.add_argument(
        "--stale-after",
        type=duration_arg,
        default=DEFAULT_STALE_AFTER,
        metavar="DURATION",
        help="mark devices not seen for this long as stale (default 5m)",
    )
    parser.add_argument(
        "--since",
        type=duration_arg,
        default=DEFAULT_SINCE,
        metavar="DURATION",
        help="ignore devices whose row last changed longer ago than this (default 30d)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_connection_options(parser)
    parser.set_defaults(func=_run)


def fleet_from_row(row: dict[str, Any], *, now_ns: int, stale_after: timedelta) -> dict[str, Any]:
    """One pivoted ``fleet`` record as a plain dict (the ``--json`` line).

    ``last_seen`` is ISO 8601 in UTC and ``age_s`` its age at ``now_ns``; a device
    is ``stale`` when it was not seen for ``stale_after``, or was never seen.
    """
    raw = row.get("last_seen_ns")
    last_ns = int(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    seen = datetime.fromtimestamp(last_ns / 1e9, UTC) if last_ns is not None else None
    age_s = (now_ns - last_ns) / 1e9 if last_ns is not None else None
    return {
        "site": row.get("site"),
        "device": row.get("device"),
        "state": row.get("state"),
        "model": row.get("model"),
        "software": row.get("software"),
        "last_seen": seen.isoformat().replace("+00:00", "Z") if seen else None,
        "last_seen_ns": last_ns,
        "age_s": round(age_s, 3) if age_s is not None else None,
        "outbox_depth": row.get("outbox_depth"),
        "escalation_rate": row.get("escalation_rate"),
        "results": row.get("results"),
        "stale": age_s is None or age_s > stale_after.total_seconds(),
    }


def fleet_table(devices: list[dict[str, Any]]) -> str:
    """The table ``edgeloop fleet`` prints for :func:`fleet_from_row` dicts."""
    cells = []
    for d in devices:
        seen = d["last_seen"]
        age = format_age(d["age_s"])
        cells.append(
            [
                str(d["site"] or "-"),
                str(d["device"] or "-"),
                str(d["state"] or "-"),
                str(d["model"] or "-"),
                str(d["software"] or "-"),
                f"{age} ({format_time(datetime.fromisoformat(seen))})" if seen else "-",
                format_number(d["outbox_depth"]),
                format_number(d["escalation_rate"], digits=3),
                format_number(d["results"]),
                "STALE" if d["stale"] else "",
            ]
        )
    return render_table(
        HEADERS, cells, right=("outbox", "escalation", "results"), max_widths={"model": 40}
    )


def _run(args: argparse.Namespace) -> int:
    config = influx_config_from_args(args)
    flux = fleet_flux(config.bucket, since=args.since, sites=tuple(args.site or ()))
    rows = query_rows(config, flux)
    now_ns = time.time_ns()
    devices = [fleet_from_row(r, now_ns=now_ns, stale_after=args.stale_after) for r in rows]
    if args.json:
        for d in devices:
            print(json.dumps(d, default=str))
        return 0
    if not devices:
        where = f" of site {', '.join(args.site)}" if args.site else ""
        print(f"no devices{where} in the fleet table")
        return 0
    print(fleet_table(devices))
    stale = sum(1 for d in devices if d["stale"])
    print(f"\n{len(devices)} devices, {stale} stale")
    return 0
