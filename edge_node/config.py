"""Settings of ``edgeloop edge run`` (the YAML a plant engineer writes).

The ``sources`` list is a union discriminated on ``type`` over every registered
source plugin (:mod:`edge_node.sources`); ``router`` and ``actions`` come from
their own modules, so each setting is defined next to the code that uses it.
"""

from __future__ import annotations

__all__ = ["EdgeConfig", "ModelConfig", "OutboxConfig", "TelemetryConfig"]

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from edge_node.actions import ActionConfig
from edge_node.router.config import RouterConfig
from edge_node.sources import load_all, source_config_union
from pipeline.config.base import HealthConfig, LoggingConfig, MetricsConfig, MqttConfig, Section
from pipeline.schemas.base import SafeId

load_all()
if TYPE_CHECKING:
    from edge_node.sources.base import SourceConfig as AnySourceConfig
else:
    AnySourceConfig = source_config_union()


class ModelConfig(Section):
    """One model the node loads at start."""

    package: str = Field(
        description="Model package folder, or 'builtin:NAME' for one shipped with edgeloop "
        "(conveyor-int8, machine-anomaly-int8)"
    )
    threads: int = Field(default=1, ge=1, le=64, description="onnxruntime intra-op threads")
    warmup: int = Field(default=5, ge=0, le=1000, description="Warm-up runs at start")


class OutboxConfig(Section):
    """The durable outbox every outgoing message goes through."""

    path: Path = Field(
        default=Path("~/.cache/edgeloop/edge/outbox.db"),
        description="SQLite file; survives restarts, crashes and network outages",
    )
    max_mb: float = Field(
        default=256, gt=0, le=1_000_000, description="Byte cap; when full, evict by priority"
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite sync: NORMAL survives a crash of the process (kill -9); FULL "
        "also survives power loss, at about 1/16 of the write rate",
    )

    @property
    def file(self) -> Path:
        """The path with ``~`` expanded."""
        return self.path.expanduser()


class TelemetryConfig(Section):
    """Buffered telemetry messages (the same figures as /metrics)."""

    interval_s: float = Field(default=10, ge=0.1, le=3600, description="Seconds between messages")


class AnomalyPublishConfig(Section):
    """How sensor decisions are published."""

    every: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Publish every Nth window as a result; raise/clear transitions always",
    )


class EdgeConfig(Section):
    """An edge node: identity, models, sources, routing, actions, outbox, uplink."""

    site: SafeId = Field(description="Plant or site id (MQTT topic level, Kafka tag)")
    device: SafeId = Field(description="This node's id: MQTT client id and Kafka key")
    models: dict[SafeId, ModelConfig] = Field(
        min_length=1, description="Models by key; sources name the one they feed"
    )
    sources: list[AnySourceConfig] = Field(min_length=1, description="Cameras and sensors")
    router: RouterConfig = Field(default_factory=RouterConfig, description="Routing of decisions")
    actions: list[ActionConfig] = Field(default_factory=list, description="Local actions")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable outbox")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Uplink broker")
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig, description="Telemetry")
    anomaly: AnomalyPublishConfig = Field(
        default_factory=AnomalyPublishConfig, description="Sensor result publishing"
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="/metrics")
    health: HealthConfig = Field(default_factory=HealthConfig, description="/healthz")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output")

    @model_validator(mode="after")
    def _references(self) -> EdgeConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        for i, src in enumerate(self.sources):
            if src.model is not None and src.model not in self.models:
                raise ValueError(
                    f"sources[{i}] ({src.name}) uses model {src.model!r}, which is not under "
                    f"'models:' (have {sorted(self.models)})"
                )
        return self
