"""Bridge fault tests: Kafka stopped, Mosquitto restarted. Every message counted.

These stop and start the shared devstack services, and always restore them.
"""

from __future__ import annotations

import os
import time

import pytest

from pipeline.schemas import decode, encode
from tests.integration.helpers import Publisher, drain

OUTAGE_S = float(os.environ.get("EDGELOOP_FAULT_OUTAGE_S", "60"))


def _batch(result_factory, site, tag, n, devices=5):
    return [result_factory(site=site, device=f"{tag}-{i % devices}", seq=i) for i in range(n)]


def _items(msgs):
    return [(f"edgeloop/v1/{m.site}/{m.device}/result", encode(m)) for m in msgs]


def _wait(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.mark.slow
def test_kafka_outage_loses_nothing_and_recovers(
    devstack, bridge_settings, bridge_factory, publisher, result_factory, unique
):
    # A short delivery timeout makes the bridge's own retry path run during the outage.
    settings = dict(bridge_settings, producer={"partitions": 4, "delivery_timeout_ms": 10_000})
    bridge = bridge_factory(settings)
    before = _batch(result_factory, unique, "a", 300)
    during = _batch(result_factory, unique, "b", 3000)
    after = _batch(result_factory, unique, "c", 300)
    assert publisher.publish_all(_items(before)) == len(before)
    assert _wait(lambda: bridge.in_flight() == 0, 30)
    devstack.kafka.stop()
    try:
        t0 = time.monotonic()
        # The broker takes all of these; the bridge holds at most receive_maximum.
        assert publisher.publish_all(_items(during)) == len(during)
        assert _wait(lambda: not bridge.health()[0], OUTAGE_S + 30), "health stayed ok"
        assert bridge.in_flight() <= settings["mqtt"]["receive_maximum"]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
    finally:
        devstack.kafka.start()
    assert publisher.publish_all(_items(after)) == len(after)
    assert _wait(lambda: bridge.health()[0] and bridge.in_flight() == 0, 180), bridge.health()
    sent = before + during + after
    records = drain(
        devstack.kafka_bootstrap, [settings["topic_map"]["result"]], len(sent), timeout=120
    )
    got = {decode(r.value).id for r in records}
    assert got == {m.id for m in sent}, f"lost {len({m.id for m in sent} - got)}"
    retries = bridge.metrics.retries.collect()[0].samples[0].value
    print(
        f"kafka outage {OUTAGE_S:.0f}s: {len(sent)} sent, {len(records) - len(got)} "
        f"duplicates, 0 lost, {retries:.0f} bridge retries"
    )


def test_mosquitto_restart_keeps_the_session(
    devstack, bridge_settings, bridge_factory, result_factory, unique
):
    host, port = devstack.mqtt_address
    bridge = bridge_factory(bridge_settings)
    first = _batch(result_factory, unique, "a", 200)
    pub = Publisher(host, port)
    assert pub.publish_all(_items(first)) == len(first)
    pub.close()
    assert _wait(lambda: bridge.in_flight() == 0, 30)
    bridge.stop()
    # Published while the bridge is away: queued in its persistent session...
    queued = _batch(result_factory, unique, "q", 300)
    pub = Publisher(host, port)
    assert pub.publish_all(_items(queued)) == len(queued)
    pub.close()
    # ...which survives a broker restart.
    devstack.mosquitto.stop()
    devstack.mosquitto.start()
    bridge = bridge_factory(bridge_settings)
    # And a restart while the bridge is connected: it reconnects by itself.
    devstack.mosquitto.stop()
    devstack.mosquitto.start()
    assert _wait(lambda: bridge.health()[0], 30), bridge.health()
    last = _batch(result_factory, unique, "c", 200)
    pub = Publisher(host, port)
    assert pub.publish_all(_items(last)) == len(last)
    pub.close()
    sent = first + queued + last
    records = drain(
        devstack.kafka_bootstrap, [bridge_settings["topic_map"]["result"]], len(sent), timeout=90
    )
    got = {decode(r.value).id for r in records}
    assert got == {m.id for m in sent}, f"lost {len({m.id for m in sent} - got)}"
