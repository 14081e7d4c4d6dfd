"""Settings of ``edgeloop bridge run``."""

from __future__ import annotations

__all__ = [
    "KAFKA_RECORD_LIMIT",
    "RECORD_OVERHEAD",
    "BridgeConfig",
    "PartitionConfig",
    "ProducerConfig",
    "default_topic_map",
]

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import (
    HealthConfig,
    KafkaConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    Section,
    checked,
)
from pipeline.schemas.codec import DEFAULT_MAX_BYTES
from pipeline.schemas.frame import MAX_FRAME_BYTES
from pipeline.topics import KafkaTopics, Stream, check_id, check_kafka_topic


def default_topic_map() -> dict[str, str]:
    """MQTT stream -> Kafka topic."""
    return {
        Stream.RESULT.value: KafkaTopics.RESULTS,
        Stream.FRAME.value: KafkaTopics.FRAMES,
        Stream.TELEMETRY.value: KafkaTopics.TELEMETRY,
        Stream.STATUS.value: KafkaTopics.STATUS,
        Stream.OTA_REPORT.value: KafkaTopics.OTA,
    }


#: Largest payload the bridge forwards by default: under Kafka's default
#: message.max.bytes (1,048,588) with room for the record's headers.
KAFKA_RECORD_LIMIT = 1_000_000
#: Room kept for a record's key, headers and framing beside its payload.
RECORD_OVERHEAD = 32 * 1024


class ProducerConfig(Section):
    """Kafka producer tuning."""

    max_request_bytes: int = Field(
        default=1_048_576,
        ge=65_536,
        le=256 << 20,
        description="Largest produce request (the client's max_request_size); must hold "
        "the largest record, and the broker must accept it (message.max.bytes)",
    )

    client: Literal["kafka-python", "aiokafka"] = Field(
        default="aiokafka",
        description="Kafka client library. 'aiokafka' (default) builds record batches in C "
        "on an asyncio loop of its own, taking messages and giving acks in batches; on "
        "blasts of 50,000 messages the bridge used 19-20 us of CPU per message with it and "
        "51-72 with 'kafka-python', whose pure-Python batches, partitioner and per-record "
        "futures share the GIL with paho (about 27,000 against 12,000-15,000 msg/s). Both "
        "are idempotent with acks=all",
    )
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        default="zstd",
        description="Batch compression codec. zstd: half the size of lz4 and about a third "
        "of its CPU here (aiokafka compresses lz4 at level 9: 4.1 against 1.3 us a record). "
        "Consumers need zstd support (kafka-python: the zstandard package)",
    )
    linger_ms: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="kafka-python: wait this long to fill a batch, ms. aiokafka does not "
        "wait: a batch holds what arrived while the partition's previous one was in flight",
    )
    batch_size: int = Field(default=131_072, ge=1024, description="Bytes per partition batch")
    max_in_flight: int = Field(
        default=5,
        ge=1,
        le=5,
        description="Produce requests in flight per broker, kafka-python only (aiokafka has "
        "one); at most 5 keeps order with idempotence",
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=1000,
        description="Give up on one send after this long; the bridge then sends it again",
    )
    partitions: int = Field(
        default=4, ge=1, le=1024, description="Partitions of topics the bridge creates"
    )
    replication_factor: int = Field(default=1, ge=1, le=16, description="Of created topics")
    create_topics: bool = Field(default=True, description="Create missing topics at start-up")


class PartitionConfig(Section):
    """Split devices between bridge instances by hash, so one device has one writer."""

    index: int = Field(ge=0, description="This instance's slot, 0 to count-1")
    count: int = Field(ge=1, le=256, description="Number of bridge instances")


class BridgeConfig(Section):
    """The MQTT-to-Kafka bridge."""

    instance: str = Field(
        default="bridge-1",
        description="Unique per bridge instance: the MQTT client id of its persistent session",
    )
    share_group: str = Field(
        default="edgeloop-bridge",
        description="MQTT v5 shared-subscription group; instances in one group share the load",
    )
    site: str = Field(default="+", description="Bridge only this site ('+' for all)")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of this instance (one per CPU core is a good start). "
        "With more than one, worker i is a partitioned instance of its own: MQTT session "
        "'{instance}-w{i}', a share of the devices (so each device keeps one writer and its "
        "order), and /metrics and /healthz on port + i",
    )
    partition: PartitionConfig | None = Field(
        default=None,
        description="Ordered scaling: every instance receives every message (plain "
        "subscription) and forwards only the devices of its slot. Without it, instances "
        "share one MQTT shared subscription (load-balanced with fail-over, but two "
        "instances may reorder one device's messages in Kafka)",
    )
    topic_map: dict[str, str] = Field(
        default_factory=default_topic_map,
        description="MQTT stream (result, frame, telemetry, status, ota/report) -> Kafka topic",
    )
    dlq_topic: str = Field(default=KafkaTopics.DLQ, description="Dead-letter topic")
    max_json_bytes: int = Field(
        default=DEFAULT_MAX_BYTES, ge=1024, description="Larger JSON payloads go to the DLQ"
    )
    max_frame_bytes: int = Field(
        default=KAFKA_RECORD_LIMIT,
        ge=1024,
        le=MAX_FRAME_BYTES,
        description="Larger frames go to the DLQ (their first bytes only). Kafka refuses "
        "records over its message.max.bytes (1 MiB by default): raise this only together "
        "with producer.max_request_bytes and the topics' max.message.bytes",
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Broker connection")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig, description="Kafka connection")
    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("instance", "share_group")
    @classmethod
    def _safe(cls, value: str) -> str:
        return checked(check_id, value)

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return value if value == "+" else checked(check_id, value)

    @field_validator("topic_map")
    @classmethod
    def _streams(cls, value: dict[str, str]) -> dict[str, str]:
        known = {s.value for s in Stream if s is not Stream.OTA}
        for stream, topic in value.items():
            if stream not in known:
                raise ValueError(f"unknown stream {stream!r}; use one of {sorted(known)}")
            checked(check_kafka_topic, topic)
        return value

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str) -> str:
        return checked(check_kafka_topic, value)

    @model_validator(mode="after")
    def _fits_kafka(self) -> BridgeConfig:
        largest = max(self.max_frame_bytes, self.max_json_bytes) + RECORD_OVERHEAD
        if largest > self.producer.max_request_bytes:
            raise ValueError(
                f"max_frame_bytes/max_json_bytes plus {RECORD_OVERHEAD} bytes of headers "
                f"({largest}) exceed producer.max_request_bytes "
                f"({self.producer.max_request_bytes}): such records could never be sent"
            )
        return self

    @model_validator(mode="after")
    def _slot(self) -> BridgeConfig:
        if self.partition is not None and self.partition.index >= self.partition.count:
            raise ValueError("partition.index must be below partition.count")
        if self.workers > 1 and len(self.instance) > 60:
            raise ValueError("instance must be at most 60 characters with workers (ids get '-wN')")
        return self
