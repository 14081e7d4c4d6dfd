"""Token buckets with an injected clock."""

from __future__ import annotations

import pytest

from edge_node.router import BudgetSet, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate():
    clock = FakeClock()
    b = TokenBucket(per_min=60, burst=3, clock=clock)
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert not b.take()
    clock.now += 0.5
    assert b.take()
    assert not b.take()


def test_refill_caps_at_burst():
    clock = FakeClock()
    b = TokenBucket(per_min=600, burst=2, clock=clock)
    b.take(), b.take()
    clock.now += 3600
    assert b.tokens == pytest.approx(2)


def test_zero_rate_only_burst():
    clock = FakeClock()
    b = TokenBucket(per_min=0, burst=1, clock=clock)
    assert b.take()
    clock.now += 1e6
    assert not b.take()


def test_clock_going_back_does_not_add_tokens():
    clock = FakeClock()
    b = TokenBucket(per_min=60, burst=1, clock=clock)
    b.take()
    clock.now -= 50
    assert not b.take()


def test_long_run_rate():
    clock = FakeClock()
    b = TokenBucket(per_min=30, burst=5, clock=clock)
    taken = 0
    for _ in range(6000):  # 10 minutes in 0.1 s steps
        clock.now += 0.1
        taken += b.take()
    assert 300 <= taken <= 305


def test_budget_per_source():
    clock = FakeClock()
    budgets = BudgetSet(per_min=60, burst=1, clock=clock)
    assert budgets.take("cam0")
    assert not budgets.take("cam0")
    assert budgets.take("cam1")
