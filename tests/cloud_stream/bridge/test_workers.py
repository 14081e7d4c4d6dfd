"""Worker settings: one writer per device, unique sessions and ports; cached partitions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka.partitioner.default import DefaultPartitioner

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.kafka_setup import CachedPartitioner
from cloud_stream.bridge.service import device_slot
from cloud_stream.bridge.workers import worker_config
from pipeline.config import parse_config
from pipeline.errors import ConfigError

DEVICES = [f"cam-{i}" for i in range(500)]


def _owner(cfg: BridgeConfig, device: str) -> bool:
    assert cfg.partition is not None
    return device_slot(device, cfg.partition.count) == cfg.partition.index


def test_each_device_has_exactly_one_worker():
    cfg = BridgeConfig(workers=3, metrics={"port": 9464}, health={"port": 9464})
    workers = [worker_config(cfg, i) for i in range(3)]
    assert [w.instance for w in workers] == ["bridge-1-w0", "bridge-1-w1", "bridge-1-w2"]
    assert [w.metrics.port for w in workers] == [9464, 9465, 9466]
    assert [w.health.port for w in workers] == [9464, 9465, 9466]
    assert all(w.workers == 1 for w in workers)
    for device in DEVICES:
        assert sum(_owner(w, device) for w in workers) == 1


def test_workers_split_only_their_instance_slot():
    for index in range(2):
        cfg = BridgeConfig(workers=2, partition={"index": index, "count": 2})
        mine = {d for d in DEVICES if device_slot(d, 2) == index}
        workers = [worker_config(cfg, i) for i in range(2)]
        for device in DEVICES:
            owners = sum(_owner(w, device) for w in workers)
            assert owners == (1 if device in mine else 0)


def test_random_status_ports_stay_random():
    w = worker_config(BridgeConfig(workers=2), 1)
    assert w.metrics.port == 0


def test_workers_need_a_short_instance_id():
    with pytest.raises(ConfigError):
        parse_config(f"workers: 2\ninstance: {'a' * 62}\n", BridgeConfig, env={})


def test_cached_partitioner_agrees_with_kafkas_default():
    cluster = SimpleNamespace(
        topics=lambda: {"t"},
        partitions_for_topic=lambda _t: {0, 1, 2, 3, 4, 5},
        available_partitions_for_topic=lambda _t: {0, 1, 2, 3, 4, 5},
    )
    ours, default = CachedPartitioner(), DefaultPartitioner()
    for device in DEVICES[:100] * 2:
        key = device.encode()
        assert ours.partition("t", key, key, None, None, cluster) == default.partition(
            "t", key, key, None, None, cluster
        )
