"""What the bridge asks of a Kafka client, and the registry of the clients it can use.

The bridge owns the delivery rule (PUBACK only after the Kafka ack, retries,
generations, metrics); a :class:`RecordProducer` only moves records to Kafka
and reports back, in batches where it can, through a :class:`DeliveryHandler`.
Two implementations: ``kafka-python`` (:mod:`.producer_kp`) and ``aiokafka``
(:mod:`.producer_aio`), picked by ``producer.client``.
"""

from __future__ import annotations

__all__ = [
    "PRODUCERS",
    "DeliveryHandler",
    "Pending",
    "RecordProducer",
    "Skip",
    "make_record_producer",
]

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.translate import DeadLetter, KafkaRecord
from pipeline.errors import EdgeloopError


class Skip:
    """Marker for messages the bridge acknowledges without producing (OTA offers)."""


@dataclass(slots=True)
class Pending:
    """One received message waiting for Kafka."""

    generation: int
    """The MQTT connection it came on (its ``mid`` means nothing on another)."""
    mid: int
    qos: int
    received: float
    """``time.monotonic()`` at receipt."""
    record: KafkaRecord | DeadLetter | Skip
    attempt: int = 0


class DeliveryHandler(Protocol):
    """Where a producer reports outcomes (any thread may call these)."""

    def on_delivered(self, pendings: Sequence[Pending]) -> None:
        """Kafka acknowledged (``acks=all``) the records of ``pendings``."""

    def on_failed(self, pendings: Sequence[Pending], exc: BaseException) -> None:
        """The records of ``pendings`` were not written; the handler sends them again."""

    def on_kafka_status(self, error: BaseException | None) -> None:
        """Kafka became reachable (``None``) or could not be reached (the error)."""


class RecordProducer(ABC):
    """A Kafka client behind the bridge: ``send`` records, report through the handler.

    Args:
        config: The bridge's settings (Kafka connection and ``producer`` section).
        handler: Receives the outcome of every record sent.
    """

    def __init__(self, config: BridgeConfig, handler: DeliveryHandler):
        self.config = config
        self.handler = handler

    @abstractmethod
    def start(self) -> None:
        """Connect (or keep trying in the background, reporting through the handler)."""

    @abstractmethod
    def send(self, pending: Pending) -> None:
        """Queue the record of ``pending`` (a KafkaRecord or DeadLetter); never blocks long.

        Called from paho's network thread, and from retry timers.
        """

    def send_many(self, pendings: Sequence[Pending]) -> None:
        """Queue several records, in their order (one ``send`` each unless overridden)."""
        for pending in pendings:
            self.send(pending)

    @abstractmethod
    def close(self, timeout: float) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s), then disconnect."""


PRODUCERS: dict[str, str] = {
    "kafka-python": "cloud_stream.bridge.producer_kp:KafkaPythonProducer",
    "aiokafka": "cloud_stream.bridge.producer_aio:AioKafkaProducer",
}
"""``producer.client`` -> implementing class (imported only when chosen)."""


def make_record_producer(config: BridgeConfig, handler: DeliveryHandler) -> RecordProducer:
    """The producer named by ``config.producer.client`` (not started).

    Raises:
        EdgeloopError: if the name is unknown or its library is not installed.
    """
    name = config.producer.client
    target = PRODUCERS.get(name)
    if target is None:
        raise EdgeloopError(
            f"unknown Kafka client {name!r}",
            where="producer.client",
            hint=f"use one of {sorted(PRODUCERS)}",
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EdgeloopError(
            f"Kafka client {name!r} is not installed ({exc})",
            where="producer.client",
            hint="pip install 'edgeloop[cloud]'",
        ) from exc
    cls: type[RecordProducer] = getattr(module, class_name)
    return cls(config, handler)
