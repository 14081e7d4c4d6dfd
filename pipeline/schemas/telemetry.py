"""``telemetry``: a device's buffered metrics and health figures."""

from __future__ import annotations

__all__ = ["TelemetryV1"]

from typing import Annotated, Literal

from pydantic import Field

from pipeline.schemas.base import MAX_INT64, Envelope

MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,127}$")]


class TelemetryV1(Envelope):
    """A snapshot of a device's counters and gauges over ``interval_s``.

    Counters are totals since the process started (consumers take differences);
    gauges are values at ``ts``.
    """

    type: Literal["telemetry"] = "telemetry"
    v: Literal[1] = 1
    interval_s: float = Field(gt=0, le=86_400, description="Seconds this snapshot covers")
    uptime_s: float = Field(ge=0, le=10 * 365 * 86_400)
    counters: dict[MetricName, Annotated[int, Field(ge=0, le=MAX_INT64)]] = Field(
        default_factory=dict, max_length=512, description="e.g. routes.uncertain, outbox.evicted"
    )
    gauges: dict[MetricName, float] = Field(
        default_factory=dict, max_length=512, description="e.g. outbox.depth, latency.p99_ms"
    )
