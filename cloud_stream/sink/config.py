"""Settings of the InfluxDB sink: batching, flushing, retries, compression."""

from __future__ import annotations

__all__ = ["SinkConfig"]

from pydantic import Field, model_validator

from pipeline.config.base import Section


class SinkConfig(Section):
    """How the cloud workers batch and write points to InfluxDB.

    The connection itself (URL, org, default bucket, token) is the shared
    ``InfluxConfig``; this section only tunes the sink.
    """

    batch_points: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Points per write request; a buffer this full is flushed at once",
    )
    flush_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Longest a point waits in the buffer before it is written, seconds",
    )
    alert_flush_s: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Flush interval of the alerts stream, seconds; short so alerts are "
        "queryable within the alert latency target",
    )
    retry_initial_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="First wait after a failed write (InfluxDB down, 5xx, 429); doubles "
        "on each further failure, with jitter",
    )
    retry_max_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Longest wait between retries of a failed write; writes are retried "
        "until they succeed or the sink is closed",
    )
    max_in_flight: int = Field(
        default=3,
        ge=1,
        le=8,
        description="Batches being written at once while the next is read; InfluxDB "
        "handles concurrent writes on several cores. Offsets are still committed in order",
    )
    gzip: bool = Field(default=True, description="Compress write requests with gzip")
    bucket: str | None = Field(
        default=None,
        min_length=1,
        description="Bucket to write to; empty: influx.bucket",
    )

    @model_validator(mode="after")
    def _retry_order(self) -> SinkConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self
