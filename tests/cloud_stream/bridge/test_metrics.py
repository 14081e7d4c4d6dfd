"""Bridge metrics: the batch histogram exposes what prometheus_client's Histogram does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cloud_stream.bridge.metrics import BatchHistogram

_BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(0, 5, allow_nan=False)), max_size=5))
def test_same_exposition_as_prometheus_histogram(batches):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch_hist = BatchHistogram("lat_seconds", "latency", _BUCKETS, ours)
    reference = Histogram("lat_seconds", "latency", buckets=_BUCKETS, registry=theirs)
    for batch in batches:
        batch_hist.observe_many(batch)
        for value in batch:
            reference.observe(value)
    assert _samples(ours) == pytest.approx(_samples(theirs))  # the sum: up to float order


def test_bucket_bounds_are_inclusive_and_buckets_must_ascend():
    hist = BatchHistogram("x", "x", _BUCKETS, None)
    hist.observe_many([0.001, 0.0010001, 7.0])
    counts, total = hist.snapshot()
    assert counts == [1, 1, 0, 0, 1]  # le=0.001 holds 0.001; 7 is in +Inf
    assert total == pytest.approx(7.0020001)
    with pytest.raises(ValueError, match="ascending"):
        BatchHistogram("y", "y", (1.0, 0.5), None)
