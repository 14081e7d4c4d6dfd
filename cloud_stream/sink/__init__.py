"""InfluxDB sink: messages -> line protocol (docs/influxdb.md) -> at-least-once writes."""

from cloud_stream.sink.config import SinkConfig
from cloud_stream.sink.errors import SinkAccessError, SinkClosed, SinkError
from cloud_stream.sink.metrics import WriterMetrics
from cloud_stream.sink.points import drift_line, fleet_line, lines_for
from cloud_stream.sink.raw import count_points, post_lines
from cloud_stream.sink.writer import InfluxWriter, WriteOutcome

__all__ = [
    "InfluxWriter",
    "SinkAccessError",
    "SinkClosed",
    "SinkConfig",
    "SinkError",
    "WriteOutcome",
    "WriterMetrics",
    "count_points",
    "drift_line",
    "fleet_line",
    "lines_for",
    "post_lines",
]
