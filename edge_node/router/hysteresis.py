"""Anomaly gate with hysteresis: a flapping score raises and clears once, not every window."""

from __future__ import annotations

__all__ = ["AnomalyGate", "Transition"]

from typing import Literal

from pipeline.modelpkg import AnomalyThresholds

Transition = Literal["raised", "cleared"]


class AnomalyGate:
    """Raise at ``raise_at`` (for ``raise_after`` windows in a row), clear below ``clear_at``.

    Args:
        thresholds: The manifest's anomaly thresholds (``clear_at <= raise_at``).
        raise_after: Consecutive windows at or above ``raise_at`` needed to raise.
        clear_after: Consecutive windows below ``clear_at`` needed to clear.
    """

    def __init__(
        self, thresholds: AnomalyThresholds, *, raise_after: int = 1, clear_after: int = 1
    ) -> None:
        if raise_after < 1 or clear_after < 1:
            raise ValueError("raise_after and clear_after must be >= 1")
        self.raise_at = thresholds.raise_at
        self.clear_at = thresholds.clear_at
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.active = False
        self._run = 0

    def update(self, score: float | None) -> Transition | None:
        """Feed one window's score; returns the transition it caused, if any.

        ``None`` (an unscored window, e.g. a sensor fault) changes nothing.
        """
        if score is None:
            return None
        if not self.active:
            self._run = self._run + 1 if score >= self.raise_at else 0
            if self._run >= self.raise_after:
                self.active, self._run = True, 0
                return "raised"
        else:
            self._run = self._run + 1 if score < self.clear_at else 0
            if self._run >= self.clear_after:
                self.active, self._run = False, 0
                return "cleared"
        return None

    def reset(self) -> None:
        """Back to inactive (e.g. after a sensor fault broke the stream)."""
        self.active = False
        self._run = 0
