"""Kafka connection settings shared by the bridge and the workers, and topic creation."""

from __future__ import annotations

__all__ = [
    "aiokafka_options",
    "delete_topics",
    "ensure_topics",
    "kafka_options",
    "list_topics",
    "partition_counts",
    "partition_of",
    "ssl_context",
]

import functools
import logging
from collections.abc import Iterable
from typing import Any

from pipeline.config.base import KafkaConfig
from pipeline.errors import EdgeloopError

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=65_536)
def partition_of(key: bytes, count: int) -> int:
    """Kafka's default partition of a keyed record (murmur2, as every Kafka client).

    Cached: murmur2 is pure Python, and the bridge and workers see the same few
    device ids over and over.
    """
    from kafka.partitioner.default import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % count


def _sasl(kafka: KafkaConfig) -> dict[str, Any]:
    """SASL settings, named the same by kafka-python and aiokafka."""
    if not kafka.sasl_mechanism:
        return {}
    return {
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_plain_username": kafka.sasl_username,
        "sasl_plain_password": (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        ),
    }


def kafka_options(kafka: KafkaConfig, client_id: str) -> dict[str, Any]:
    """kafka-python connection options (producer, consumer and admin client)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": client_id,
        "security_protocol": kafka.security_protocol,
        **_sasl(kafka),
    }
    if kafka.tls is not None:
        opts.update(
            ssl_cafile=kafka.tls.ca_file,
            ssl_certfile=kafka.tls.cert_file,
            ssl_keyfile=kafka.tls.key_file,
            ssl_check_hostname=not kafka.tls.insecure,
        )
    return opts


def aiokafka_options(kafka: KafkaConfig, client_id: str) -> dict[str, Any]:
    """The same settings for aiokafka clients (Faust's driver and the sink's consumer)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": ",".join(kafka.bootstrap_servers),
        "client_id": client_id,
        "security_protocol": kafka.security_protocol,
        **_sasl(kafka),
    }
    if kafka.tls is not None:
        opts["ssl_context"] = ssl_context(kafka)
    return opts


def ssl_context(kafka: KafkaConfig) -> Any:
    """The TLS context of ``kafka.tls`` for aiokafka (and Faust's SSL credentials)."""
    from aiokafka.helpers import create_ssl_context

    tls = kafka.tls
    assert tls is not None
    ctx = create_ssl_context(cafile=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file)
    ctx.check_hostname = not tls.insecure
    return ctx


def _admin(kafka: KafkaConfig, client_id: str) -> Any:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**kafka_options(kafka, client_id))
    except KafkaError as exc:
        raise EdgeloopError(
            f"cannot reach Kafka at {', '.join(kafka.bootstrap_servers)}: {exc}",
            where="kafka.bootstrap_servers",
            hint="is Kafka running? (edgeloop devstack status)",
        ) from exc


def ensure_topics(
    kafka: KafkaConfig,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    client_id: str = "edgeloop-admin",
) -> list[str]:
    """Create the topics that are missing; return the names created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = _admin(kafka, client_id)
    try:
        existing = set(admin.list_topics())
        created = []
        for name in sorted(set(names) - existing):
            try:
                admin.create_topics([NewTopic(name, partitions, replication_factor)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def partition_counts(
    kafka: KafkaConfig, names: Iterable[str], *, client_id: str = "edgeloop-admin"
) -> dict[str, int]:
    """Number of partitions of each existing topic among ``names``."""
    admin = _admin(kafka, client_id)
    try:
        wanted = sorted(set(names))
        described = admin.describe_topics(wanted)
        return {
            t.get("name", t.get("topic")): len(t["partitions"])
            for t in described
            if t.get("error_code", 0) == 0 and t.get("partitions")
        }
    finally:
        admin.close()


def list_topics(kafka: KafkaConfig, *, client_id: str = "edgeloop-admin") -> set[str]:
    """Names of every topic in the cluster."""
    admin = _admin(kafka, client_id)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def delete_topics(
    kafka: KafkaConfig, names: Iterable[str], *, client_id: str = "edgeloop-admin"
) -> int:
    """Delete the named topics (for tests and benchmarks cleaning up after themselves).

    Returns how many deletions were requested; topics already gone are skipped.
    """
    from kafka.errors import KafkaError

    wanted = sorted(set(names))
    admin = _admin(kafka, client_id)
    try:
        present = wanted and sorted(set(wanted) & set(admin.list_topics()))
        for i in range(0, len(present), 100):
            try:
                admin.delete_topics(present[i : i + 100], timeout_ms=30_000)
            except KafkaError as exc:  # e.g. one of them was deleted meanwhile
                logger.warning("deleting %d topics: %s", len(present[i : i + 100]), exc)
        return len(present)
    finally:
        admin.close()
