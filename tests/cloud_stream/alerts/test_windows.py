from __future__ import annotations

import json

import pytest

from cloud_stream.alerts.windows import HoppingCounts, SeqDedup
from tests.cloud_stream.alerts.messages import NS, T0


def roundtrip(counts: HoppingCounts) -> HoppingCounts:
    doc = counts.to_state()
    again = HoppingCounts.from_state(json.loads(json.dumps(doc)))
    assert again.to_state() == doc
    return again


def test_totals_cover_the_buckets_of_the_window() -> None:
    w = HoppingCounts(300, 60)
    w.add(T0, "a")
    w.add(T0 + 59 * NS, "a")
    w.add(T0 + 60 * NS, "b", 3)
    assert w.totals(T0 + 60 * NS) == {"a": 2, "b": 3}
    assert w.total(T0 + 60 * NS) == 5
    # Before the second bucket, only the first counts.
    assert w.totals(T0 + 59 * NS) == {"a": 2}


def test_window_edges_are_whole_steps() -> None:
    w = HoppingCounts(300, 60)
    w.add(T0, "x")  # first bucket [T0, T0+60s)
    # The window at T0+299s holds buckets T0..T0+240s: x is inside.
    assert w.totals(T0 + 299 * NS) == {"x": 1}
    # At T0+300s the window is T0+60s..T0+300s: x fell out.
    assert w.totals(T0 + 300 * NS) == {}
    assert w.window_end_ns(T0 + 299 * NS) == T0 + 300 * NS


def test_events_after_now_are_not_in_the_window_of_now() -> None:
    w = HoppingCounts(300, 60)
    w.add(T0 + 120 * NS, "later")
    assert w.totals(T0) == {}
    assert w.totals(T0 + 120 * NS) == {"later": 1}


def test_late_events_are_ignored_and_counted() -> None:
    w = HoppingCounts(300, 60)
    assert w.add(T0 + 600 * NS, "new")
    assert not w.add(T0, "old", 2)  # 10 min before the newest event: outside its window
    assert w.late == 2
    assert w.add(T0 + 360 * NS, "recent")  # older than the newest, but still inside
    assert w.late == 2
    assert w.totals(T0 + 600 * NS) == {"new": 1, "recent": 1}


def test_expire_drops_old_buckets_and_makes_older_events_late() -> None:
    w = HoppingCounts(120, 60)
    w.add(T0, "a")
    w.expire(T0 + 600 * NS)
    assert len(w) == 0
    assert not w.add(T0 + 60 * NS, "a")
    assert w.late == 1
    w.expire(T0)  # going back does nothing
    assert not w.add(T0 + 60 * NS, "a")


def test_memory_is_bounded_by_the_window() -> None:
    w = HoppingCounts(300, 60)
    for i in range(5000):
        w.add(T0 + i * 7 * NS, f"k{i % 3}")
    assert len(w) <= 5
    assert len(w.to_state()["buckets"]) <= 5


def test_round_trip_at_every_step_behaves_the_same() -> None:
    plain = HoppingCounts(180, 60)
    stored = HoppingCounts(180, 60)
    times = [0, 10, 70, 5, 400, 130, 401, 200, 1000]  # some late
    for i, t in enumerate(times):
        ts = T0 + t * NS
        assert plain.add(ts, f"k{i % 2}") == stored.add(ts, f"k{i % 2}")
        stored = roundtrip(stored)
        assert stored.to_state() == plain.to_state()
        assert stored.totals(ts) == plain.totals(ts)
    assert stored.late == plain.late > 0


@pytest.mark.parametrize(("size", "step"), [(0, 60), (300, 0), (300, 70), (30, 60), (10**7, 1)])
def test_bad_sizes_are_rejected(size: int, step: int) -> None:
    with pytest.raises(ValueError, match="window"):
        HoppingCounts(size, step)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="n must be"):
        HoppingCounts(60, 60).add(T0, "a", -1)


def test_seq_dedup_drops_duplicates_and_accepts_reordering() -> None:
    d = SeqDedup(span=10)
    assert d.accept("cam-01", 5)
    assert d.accept("cam-01", 7)
    assert d.accept("cam-01", 6)  # reordered, first time: kept
    assert not d.accept("cam-01", 6)
    assert not d.accept("cam-01", 5)
    assert d.accept("cam-02", 5)  # another device
    assert d.duplicates == 2
    assert d.accept("cam-01", 30)
    assert not d.accept("cam-01", 20)  # more than span below the newest
    assert d.stale == 1


def test_seq_dedup_is_bounded_and_round_trips() -> None:
    d = SeqDedup(span=16)
    for seq in range(1000):
        assert d.accept("cam-01", seq)
        doc = d.to_state()
        d = SeqDedup.from_state(json.loads(json.dumps(doc)))
        assert d.to_state() == doc
    high, mask = d.to_state()["seen"]["cam-01"]
    assert high == 999
    assert int(mask, 16) < 2**16
    assert not d.accept("cam-01", 999)
    assert not d.accept("cam-01", 984)  # 15 below: still remembered as seen
    assert not d.accept("cam-01", 983)  # 16 below: too old
    assert (d.duplicates, d.stale) == (2, 1)


def test_seq_dedup_remembers_gaps() -> None:
    d = SeqDedup(span=64)
    assert d.accept("cam-01", 100)
    assert d.accept("cam-01", 140)
    assert d.accept("cam-01", 120)  # never seen: a gap filled late
    assert not d.accept("cam-01", 100)
    assert not d.accept("cam-01", 120)
    assert d.accept("cam-01", 121)
    with pytest.raises(ValueError, match="span"):
        SeqDedup(0)
