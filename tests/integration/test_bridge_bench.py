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
    ):
        assert key in report, key
    assert report["lost"] == 0
    assert report["msgs_per_s"] > 0
    assert report["baseline_msgs_per_s"] > 0
    assert report["p99_ms"] >= report["p50_ms"]
