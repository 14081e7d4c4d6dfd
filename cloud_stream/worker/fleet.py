"""The fleet table: one row per device, built from its status, telemetry and results.

Rows are plain JSON dicts so they live in a changelog-backed Faust table. Every
update is driven by the message's own time, so a replay builds the same rows.
The escalation rate is an exponentially decayed share of classify results the
edge routed ``uncertain`` (half-life :data:`HALF_LIFE_S` of event time).
"""

from __future__ import annotations

__all__ = [
    "HALF_LIFE_S",
    "FleetRow",
    "escalation_rate",
    "observe_result",
    "observe_status",
    "observe_telemetry",
]

import math
from typing import Any

from pipeline.schemas import ResultV1, StatusV1, TelemetryV1

HALF_LIFE_S = 300.0

FleetRow = dict[str, Any]


def _row(row: FleetRow | None, site: str, device: str) -> FleetRow:
    if row is None:
        return {
            "rev": 1,
            "site": site,
            "device": device,
            "state": "unknown",
            "software": "",
            "model": "",
            "last_seen_ns": 0,
            "changed_ns": 0,
            "outbox_depth": None,
            "results": 0,
            "esc_w": 0.0,
            "esc_n": 0.0,
            "esc_ts": 0,
        }
    out = dict(row)
    out["rev"] = int(out.get("rev", 0)) + 1  # every update is a new revision to publish
    return out


def _seen(row: FleetRow, ts: int) -> None:
    row["last_seen_ns"] = max(int(row["last_seen_ns"]), ts)
    row["changed_ns"] = max(int(row["changed_ns"]), ts)


def _apply_status(row: FleetRow, msg: StatusV1) -> None:
    row["state"] = msg.state
    row["software"] = msg.software
    if msg.models:
        row["model"] = ",".join(f"{m.name}@{m.version}" for m in msg.models)


def observe_status(row: FleetRow | None, msg: StatusV1) -> FleetRow:
    """A status message: state, software, models.

    An older status does not win, except the last will of the current connection
    (an ``offline`` status older than the current status but newer than the one
    before it).
    """
    out = _row(row, msg.site, msg.device)
    last = int(out.get("status_ts", 0))
    if msg.ts >= last:
        out["status_prev_ts"] = last
        out["status_ts"] = msg.ts
        _apply_status(out, msg)
    elif (
        msg.state == "offline"
        and out["state"] != "offline"
        and msg.ts > int(out.get("status_prev_ts", 0))
    ):
        # An MQTT last will carries the time of the connect it was set at, so it is
        # older than that connection's online status, yet it ends that connection.
        # It is newer than the status before that online one; a stale offline is not.
        _apply_status(out, msg)
        # The row's point must come after the one it replaces (readers take the last).
        out["changed_ns"] = max(int(out["changed_ns"]) + 1, msg.ts)
    if msg.state != "offline":  # the last will is the broker speaking, not the device
        _seen(out, msg.ts)
    else:
        out["changed_ns"] = max(int(out["changed_ns"]), msg.ts)
    return out


def observe_telemetry(row: FleetRow | None, msg: TelemetryV1) -> FleetRow:
    """A telemetry snapshot: outbox depth."""
    out = _row(row, msg.site, msg.device)
    depth = msg.gauges.get("outbox.depth")
    if depth is not None:
        out["outbox_depth"] = depth
    _seen(out, msg.ts)
    return out


def observe_result(row: FleetRow | None, msg: ResultV1) -> FleetRow:
    """A result: last seen, result count, and the decayed escalation share."""
    out = _row(row, msg.site, msg.device)
    out["results"] = int(out["results"]) + 1
    if msg.task == "classify":
        last = int(out["esc_ts"])
        dt = max(0.0, (msg.ts - last) / 1e9) if last else 0.0
        decay = math.pow(0.5, dt / HALF_LIFE_S)
        out["esc_w"] = float(out["esc_w"]) * decay + (1.0 if msg.route == "uncertain" else 0.0)
        out["esc_n"] = float(out["esc_n"]) * decay + 1.0
        out["esc_ts"] = max(last, msg.ts)
    _seen(out, msg.ts)
    return out


def escalation_rate(row: FleetRow) -> float | None:
    """Share of recent classify results routed uncertain; None before any."""
    n = float(row.get("esc_n", 0.0))
    return float(row["esc_w"]) / n if n > 0 else None
