"""What a worker's agents use, built and checked before the Faust app starts."""

from __future__ import annotations

__all__ = ["Components"]

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cloud_stream.alerts.evaluator import Evaluator
from cloud_stream.datasets.pool import SampleWriter
from cloud_stream.sink.writer import InfluxWriter
from cloud_stream.slowpath.registry import ModelRegistry
from cloud_stream.worker.config import CloudConfig
from cloud_stream.worker.metrics import WorkerMetrics
from cloud_stream.worker.slowpath_stage import SlowPath


@dataclass
class Components:
    """The parts of one worker.

    Attributes:
        config: Its settings.
        metrics: Its Prometheus metrics.
        partitions: Partitions of the input topics (tables and internal topics follow).
        registry: Model packages, for teachers and score references.
        evaluators: One per enabled alert rule.
        slowpath: Teachers; None when the slow path is off.
        samples: Dataset pool writer; None when datasets are off.
        writer: InfluxDB writer (sink and derived points); None when the sink is off.
        clock: Wall clock in ns (tests may pass their own).
    """

    config: CloudConfig
    metrics: WorkerMetrics
    partitions: int
    registry: ModelRegistry
    evaluators: list[Evaluator[Any, Any]] = field(default_factory=list)
    slowpath: SlowPath | None = None
    samples: SampleWriter | None = None
    writer: InfluxWriter | None = None
    clock: Callable[[], int] = time.time_ns
