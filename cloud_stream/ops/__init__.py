"""Operator tools that read InfluxDB: ``edgeloop alerts``, ``edgeloop fleet``."""

from __future__ import annotations

__all__ = [
    "SEVERITIES",
    "AlertQuery",
    "alerts_flux",
    "fleet_flux",
    "flux_string",
    "parse_duration",
    "query_rows",
    "render_table",
]

from cloud_stream.ops.connection import query_rows
from cloud_stream.ops.flux import (
    SEVERITIES,
    AlertQuery,
    alerts_flux,
    fleet_flux,
    flux_string,
    parse_duration,
)
from cloud_stream.ops.table import render_table
