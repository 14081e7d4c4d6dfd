"""The bridge's Kafka clients: connection options, the producer, topic creation."""

from __future__ import annotations

__all__ = [
    "CachedPartitioner",
    "aiokafka_producer_options",
    "ensure_topics",
    "kafka_options",
    "make_producer",
]

from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import DefaultPartitioner

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.kafka_conn import aiokafka_options, partition_of
from cloud_stream.kafka_conn import ensure_topics as create_missing
from cloud_stream.kafka_conn import kafka_options as shared_options


def kafka_options(config: BridgeConfig) -> dict[str, Any]:
    """Connection options shared by the producer and the admin client."""
    return shared_options(config.kafka, f"edgeloop-{config.instance}")


class CachedPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """kafka-python's default partitioner through :func:`partition_of` (hashed once per key).

    Same partition as every other Kafka client for the same key and partition
    count; the count is part of the cache key, so added partitions are seen.
    """

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        """The partition of a record (random for one without a key, as the default)."""
        parts = cluster.partitions_for_topic(topic)
        if serialized_key is None or not parts:
            return int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
        return partition_of(bytes(serialized_key), len(parts))


def make_producer(config: BridgeConfig) -> KafkaProducer:
    """An idempotent ``acks=all`` producer: per-partition order survives its retries."""
    p = config.producer
    return KafkaProducer(
        **kafka_options(config),
        acks="all",
        enable_idempotence=True,
        max_request_size=p.max_request_bytes,
        compression_type=None if p.compression == "none" else p.compression,
        linger_ms=p.linger_ms,
        batch_size=p.batch_size,
        # At most 5 with idempotence, or the broker cannot keep order across retries.
        max_in_flight_requests_per_connection=p.max_in_flight,
        delivery_timeout_ms=p.delivery_timeout_ms,
        request_timeout_ms=min(30_000, p.delivery_timeout_ms - p.linger_ms),
        max_block_ms=5_000,
        retry_backoff_ms=200,
        partitioner=CachedPartitioner(),
    )


def aiokafka_producer_options(config: BridgeConfig) -> dict[str, Any]:
    """``AIOKafkaProducer`` arguments: the same guarantees as :func:`make_producer`.

    aiokafka retries an idempotent batch until it is written (it never expires one
    that was sent), so ``delivery_timeout_ms`` bounds only the wait for metadata
    and for room in the queue; the bridge then sends the record again.
    """
    p = config.producer
    return {
        **aiokafka_options(config.kafka, f"edgeloop-{config.instance}"),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if p.compression == "none" else p.compression,
        "linger_ms": p.linger_ms,
        "max_batch_size": p.batch_size,
        "max_request_size": p.max_request_bytes,
        "request_timeout_ms": min(30_000, p.delivery_timeout_ms),
        "retry_backoff_ms": 200,
    }


def ensure_topics(config: BridgeConfig) -> list[str]:
    """Create the mapped topics and the DLQ if missing; return those created."""
    p = config.producer
    return create_missing(
        config.kafka,
        {*config.topic_map.values(), config.dlq_topic},
        partitions=p.partitions,
        replication_factor=p.replication_factor,
        client_id=f"edgeloop-{config.instance}",
    )
