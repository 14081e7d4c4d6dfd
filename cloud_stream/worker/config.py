"""Settings of ``edgeloop cloud worker``."""

from __future__ import annotations

__all__ = ["AgentsConfig", "AuditConfig", "CloudConfig", "CloudTopics", "SlowPathConfig"]

from pydantic import Field, field_validator

from cloud_stream.datasets.config import DatasetConfig
from cloud_stream.sink.config import SinkConfig
from pipeline.config.base import (
    InfluxConfig,
    KafkaConfig,
    LoggingConfig,
    MetricsConfig,
    Section,
    checked,
)
from pipeline.topics import KafkaTopics, check_id, check_kafka_topic


class CloudTopics(Section):
    """Kafka topics the workers read and write (the bridge's topic map, plus ours)."""

    results: str = Field(default=KafkaTopics.RESULTS, description="Edge results (input)")
    frames: str = Field(default=KafkaTopics.FRAMES, description="Uploaded frames (input)")
    telemetry: str = Field(default=KafkaTopics.TELEMETRY, description="Edge telemetry (input)")
    status: str = Field(default=KafkaTopics.STATUS, description="Device status (input)")
    verdicts: str = Field(default=KafkaTopics.VERDICTS, description="Teacher verdicts (output)")
    alerts: str = Field(default=KafkaTopics.ALERTS, description="Alerts (output)")
    dlq: str = Field(default=KafkaTopics.DLQ, description="Dead letters (output)")

    @field_validator("*")
    @classmethod
    def _topic(cls, value: str) -> str:
        return checked(check_kafka_topic, value)


class AgentsConfig(Section):
    """Which parts run in this worker; split them over workers to scale them apart."""

    slowpath: bool = Field(default=True, description="FP32 teacher on uploaded frames")
    rules: bool = Field(default=True, description="Alert rules, drift audit and the fleet table")
    sink: bool = Field(default=True, description="InfluxDB sink of every stream")
    datasets: bool = Field(default=True, description="Keep uncertain/disagreed frames as samples")


class SlowPathConfig(Section):
    """The FP32 teacher that re-checks uploaded frames."""

    teachers: dict[str, str] = Field(
        default_factory=lambda: {
            "conveyor-int8": "conveyor-teacher",
            "conveyor-fp32": "conveyor-teacher",
        },
        description="Edge model name -> teacher package (a built-in name, a package name in "
        "model_dirs, or a folder path); the key '*' covers models not named",
    )
    model_dirs: list[str] = Field(
        default_factory=list,
        description="Folders of model packages, to find edge models' manifests (built-ins always)",
    )
    batch_size: int = Field(default=16, ge=1, le=512, description="Frames per teacher run")
    batch_wait_ms: int = Field(
        default=50, ge=1, le=10_000, description="Longest wait to fill a batch, ms"
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Batches judged at once, each in its own thread (decode, preprocess, "
        "teacher): keeps every core busy while other batches decode or send their verdicts "
        "(on 2 cores: 1 -> ~220, 4 -> ~290 frames/s). Verdict order does not matter",
    )
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="onnxruntime threads per batch; 0 = the cores divided by concurrency",
    )


class AuditConfig(Section):
    """Drift audit: edge/teacher agreement and score shift figures written to InfluxDB."""

    window_s: int = Field(default=900, ge=1, le=7 * 86_400, description="Audit window, seconds")
    step_s: int = Field(default=60, ge=1, le=86_400, description="Hop of the window, seconds")
    publish_every_s: float = Field(
        default=30, gt=0, le=3600, description="How often drift and fleet figures are written"
    )
    tick_s: float = Field(
        default=5, gt=0, le=600, description="How often time-based rules (offline) are checked"
    )


class CloudConfig(Section):
    """One cloud stream worker (Faust). Workers with the same app_id share the partitions."""

    app_id: str = Field(
        default="edgeloop-cloud",
        description="Faust app id: consumer group and prefix of its changelog topics",
    )
    instance: str = Field(default="worker-1", description="Name of this worker, for logs")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig, description="Kafka connection")
    influx: InfluxConfig = Field(default_factory=InfluxConfig, description="InfluxDB connection")
    topics: CloudTopics = Field(default_factory=CloudTopics)
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partitions of topics the worker creates when missing; existing topics "
        "keep theirs (tables follow the input topics)",
    )
    replication_factor: int = Field(default=1, ge=1, le=16, description="Of created topics")
    state_dir: str = Field(
        default="~/.cache/edgeloop/cloud",
        description="Local state of the worker (Faust data dir); tables recover from Kafka",
    )
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    slowpath: SlowPathConfig = Field(default_factory=SlowPathConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    rules_file: str | None = Field(
        default=None,
        description="Alert rules YAML (relative to this file); none: no alert rules",
    )
    sink: SinkConfig = Field(default_factory=SinkConfig)
    datasets: DatasetConfig = Field(default_factory=DatasetConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("app_id", "instance")
    @classmethod
    def _safe(cls, value: str) -> str:
        return checked(check_id, value)
