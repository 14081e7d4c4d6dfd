"""The bridge benchmark runs end to end and loses nothing (figures are not asserted)."""

from __future__ import annotations

import pytest

from cloud_stream.bridge import bench


@pytest.mark.slow
def test_quick_bridge_bench_reports_every_field(devstack):
    report = bench.run(quick=True)
    for key in (
        "messages",
        "lost",
        "duplicates",
        "msgs_per_s",
        "baseline_msgs_per_s",
        "ratio_vs_baseline",
        "p50_ms",
        "p99_ms",
        "bridge_rss_mb",
        "bridge_rss_max_mb",
        "rounds",
        "round_ratios",
        "workers",
        "bridge_cpu_us_per_msg",
        "steady_achieved_rate",
        "baseline_p99_ms",
    ):
        assert key in report, key
    assert report["lost"] == 0
    assert report["msgs_per_s"] > 0
    assert report["baseline_msgs_per_s"] > 0
    assert report["p99_ms"] >= report["p50_ms"]
    assert report["workers"] >= 1
    assert report["bridge_cpu_us_per_msg"] > 0
    assert report["bridge_rss_max_mb"] >= max(
        report["bridge_rss_start_mb"], report["bridge_rss_mb"]
    )


@pytest.mark.slow
def test_bridge_bench_runs_the_bridge_as_workers(devstack):
    report = bench.run(quick=True, workers=2)
    assert report["workers"] == 2
    assert report["lost"] == 0
    assert report["duplicates"] == 0
