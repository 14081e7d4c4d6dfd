"""The bridge benchmark's arithmetic, without a stack."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cloud_stream.bridge.bench import _percentiles, _throughput
from cloud_stream.bridge.bench_tools import RssSampler


def _record(msg_id: str, append_ms: int) -> SimpleNamespace:
    return SimpleNamespace(value=json.dumps({"id": msg_id}).encode(), timestamp=append_ms)


def test_throughput_counts_only_the_measured_messages():
    start_ns = 1_000 * 10**6  # 1,000 ms
    records = [
        _record("warm-1", 900),  # the warm-up, before the clock started
        _record("a", 1_100),
        _record("b", 1_400),
        _record("b", 1_500),  # a duplicate
        _record("warm-2", 2_500),  # late warm-up stragglers do not stretch the time
    ]
    rate, lost, duplicates = _throughput(records, start_ns, {"a", "b", "c"})
    assert rate == pytest.approx(2 / 0.5)  # a and b, by the last measured append (1,500 ms)
    assert lost == 1  # c
    assert duplicates == 1


def test_percentiles():
    assert _percentiles([]) == (None, None)
    lat = [float(i) for i in range(1, 101)]
    assert _percentiles(lat) == (51.0, 99.0)


def test_rss_sampler_reads_at_start_every_interval_and_end():
    import os
    import time

    with RssSampler(os.getpid(), interval_s=0.01) as rss:
        time.sleep(0.1)
    assert len(rss.samples) >= 3
    assert all(mb > 1 for mb in rss.samples)  # this Python process: tens of MB
