"""The cloud benchmark runs end to end on the real stack and loses nothing.

Speeds are not asserted (the machine is shared); the report's shape, its
counts and the clean-up are.
"""

from __future__ import annotations

import os

import pytest

from cloud_stream.bridge.bench_tools import process_tree
from cloud_stream.worker import bench

RATES = (
    "slowpath_frames_per_s",
    "teacher_raw_frames_per_s",
    "slowpath_ratio",
    "sink_points_per_s",
    "raw_write_points_per_s",
    "sink_ratio",
    "alert_latency_p50_ms",
    "alert_latency_p95_ms",
)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as fh:
            return fh.read()
    except OSError:  # gone meanwhile
        return ""


@pytest.fixture(scope="module")
def report(devstack):
    return bench.run(quick=True)


@pytest.mark.slow
def test_quick_cloud_bench_reports_every_figure(report):
    for key in (
        *RATES,
        "lost",
        "frames",
        "points",
        "alert_samples",
        "teacher_batch_size",
        "cpu_count",
        "seconds",
        "quick",
    ):
        assert key in report, key
    for key in RATES:
        assert isinstance(report[key], float | int), (key, report[key])
        assert report[key] > 0, (key, report[key])
    assert report["quick"] is True
    assert (report["frames"], report["points"], report["alert_samples"]) == (256, 30_000, 20)
    assert report["teacher_batch_size"] >= 1
    assert report["cpu_count"] >= 1
    assert report["seconds"] > 0


@pytest.mark.slow
def test_quick_cloud_bench_loses_nothing(report):
    assert report["slowpath_lost"] == 0
    assert report["sink_lost"] == 0
    assert report["alerts_lost"] == 0
    assert report["lost"] == 0
    assert report["verdicts"] >= report["frames"]
    assert report["slowpath_dlq"] == 0
    assert report["dataset_samples"] > 0  # datasets on: uncertain frames were kept


@pytest.mark.slow
def test_quick_cloud_bench_figures_are_consistent(report):
    assert report["alert_latency_p95_ms"] >= report["alert_latency_p50_ms"]
    assert report["alert_latency_max_ms"] >= report["alert_latency_p95_ms"]
    assert report["slowpath_ratio"] == pytest.approx(
        report["slowpath_frames_per_s"] / report["teacher_raw_frames_per_s"], rel=0.01
    )
    assert report["sink_ratio"] == pytest.approx(
        report["sink_points_per_s"] / report["raw_write_points_per_s"], rel=0.01
    )
    assert report["slowpath_worker_cpu_ms_per_frame"] > 0
    assert report["sink_worker_cpu_us_per_point"] > 0


@pytest.mark.slow
def test_quick_cloud_bench_cleans_up(report, influx_credentials):
    from influxdb_client.client.influxdb_client import InfluxDBClient

    # Only the bench's workers count: services a fault test restarted (Kafka,
    # Mosquitto) are children of this process too, and rightly keep running.
    workers = [pid for pid in process_tree(os.getpid()) if "cloud\x00worker" in _cmdline(pid)]
    assert workers == [], "a worker process was left running"
    from cloud_stream.kafka_conn import list_topics
    from pipeline.config.base import KafkaConfig

    left = [t for t in list_topics(KafkaConfig()) if report["run"] in t]
    assert left == [], "the bench's topics were deleted"
    with InfluxDBClient(
        url=influx_credentials.url,
        token=influx_credentials.operator_token,
        org=influx_credentials.org,
    ) as client:
        api = client.buckets_api()
        for part in ("a", "sink", "raw"):
            assert api.find_bucket_by_name(f"bench-{report['run']}-{part}") is None, part
