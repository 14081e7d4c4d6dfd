"""``producer.client: kafka-python``: records through kafka-python's ``KafkaProducer``.

kafka-python batches on its own sender thread; each record gets a future whose
callbacks report to the handler, one record at a time. Simple and well tried,
but its record batches, partitioner and futures are pure Python: about 22 µs of
CPU per record, under the GIL that paho's thread needs too.
"""

from __future__ import annotations

__all__ = ["KafkaPythonProducer"]

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from cloud_stream.bridge.kafka_setup import make_producer
from cloud_stream.bridge.producer import Pending, RecordProducer
from cloud_stream.bridge.translate import DeadLetter, KafkaRecord


class KafkaPythonProducer(RecordProducer):
    """kafka-python behind the bridge (see the module docs)."""

    _producer: KafkaProducer | None = None

    def start(self) -> None:
        """Connect; raises kafka-python's error when no broker answers."""
        self._producer = make_producer(self.config)
        self.handler.on_kafka_status(None)

    def send(self, pending: Pending) -> None:
        """Hand the record to kafka-python (which blocks up to 5 s for unknown metadata)."""
        assert self._producer is not None, "start() first"
        rec = pending.record
        assert isinstance(rec, KafkaRecord | DeadLetter)
        try:
            future = self._producer.send(
                rec.topic, key=rec.key, value=rec.value, headers=rec.headers
            )
        except KafkaError as exc:
            self.handler.on_failed((pending,), exc)
            return
        future.add_callback(self._delivered, pending)
        future.add_errback(self._failed, pending)

    def _delivered(self, pending: Pending, _metadata: Any) -> None:
        self.handler.on_delivered((pending,))

    def _failed(self, pending: Pending, exc: BaseException) -> None:
        self.handler.on_failed((pending,), exc)

    def close(self, timeout: float) -> None:
        """Flush (at most ``timeout`` s, capped at 10) and close."""
        if self._producer is None:
            return
        self._producer.flush(timeout=min(timeout, 10))
        self._producer.close(timeout=5)
