"""Kafka round trips with kafka-python and with aiokafka (which Faust uses)."""

from __future__ import annotations

import asyncio

from pipeline.schemas import decode, encode


def test_kafka_python_roundtrip(
    kafka_topic, kafka_producer_factory, kafka_consumer_factory, result_factory
):
    producer = kafka_producer_factory(enable_idempotence=True, compression_type="gzip", linger_ms=5)
    sent = [result_factory(device=f"cam-{i % 3}") for i in range(30)]
    for msg in sent:
        producer.send(
            kafka_topic,
            key=msg.device.encode(),
            value=encode(msg),
            headers=[("type", b"result"), ("v", b"1")],
        )
    producer.flush(10)
    consumer = kafka_consumer_factory(kafka_topic)
    got = []
    for record in consumer:
        got.append(record)
        if len(got) == len(sent):
            break
    assert sorted(decode(r.value).id for r in got) == sorted(m.id for m in sent)
    assert all(dict(r.headers)["type"] == b"result" for r in got)
    # Same key, same partition, in order: per-device order holds.
    by_device: dict[bytes, list[int]] = {}
    for r in got:
        by_device.setdefault(r.key, []).append(decode(r.value).seq)
    assert all(seqs == sorted(seqs) for seqs in by_device.values())


def test_aiokafka_roundtrip(devstack, kafka_topic, unique, result_factory):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    sent = [result_factory() for _ in range(10)]

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(
            bootstrap_servers=devstack.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for msg in sent:
                await producer.send_and_wait(kafka_topic, encode(msg), key=b"cam-01")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            kafka_topic,
            bootstrap_servers=devstack.kafka_bootstrap,
            group_id=f"{unique}-aio",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        values = []
        try:
            while len(values) < len(sent):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 20)
                for records in batch.values():
                    values.extend(r.value for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()
        return values

    values = asyncio.run(run())
    assert [decode(v) for v in values] == sent
