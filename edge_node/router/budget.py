"""Token buckets: at most ``rate`` uploads per minute on average, ``burst`` at once."""

from __future__ import annotations

__all__ = ["BudgetSet", "TokenBucket"]

import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """A token bucket that refills continuously.

    Args:
        per_min: Tokens added per minute.
        burst: Bucket size; it starts full.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, per_min: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = per_min / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; returns whether it did."""
        self._refill()
        if self._tokens + 1e-9 >= n:
            self._tokens -= n
            return True
        return False


class BudgetSet:
    """One token bucket per key (a source), created on first use."""

    def __init__(self, per_min: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.per_min = per_min
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, key: str) -> TokenBucket:
        """The bucket of ``key``."""
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.per_min, self.burst, self._clock)
        return b

    def take(self, key: str, n: float = 1.0) -> bool:
        """Take from ``key``'s bucket."""
        return self.bucket(key).take(n)
