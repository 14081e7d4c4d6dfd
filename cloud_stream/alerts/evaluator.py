"""Base class of the rule evaluators, and the helpers they share."""

from __future__ import annotations

__all__ = ["Evaluator", "ReferenceLookup", "fmt_number"]

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from cloud_stream.alerts.rules import RuleBase
from cloud_stream.alerts.states import AlertState
from pipeline.modelpkg import ScoreReference
from pipeline.schemas import AlertV1, ModelRef

ReferenceLookup = Callable[[ModelRef], ScoreReference | None]
"""Looks up the score reference of a model (from its manifest), None when it has none."""
R = TypeVar("R", bound=RuleBase)
S = TypeVar("S", bound=AlertState)


def fmt_number(x: float) -> str:
    """A measured number for a summary: 4 significant digits."""
    return f"{x:.4g}"


class Evaluator(ABC, Generic[R, S]):
    """Evaluates one rule. Subclasses set ``consumes`` and ``ticks``."""

    consumes: ClassVar[frozenset[str]] = frozenset()
    """Message types (``result``, ``verdict``, ``status``, ``telemetry``) it reads."""
    ticks: ClassVar[bool] = False
    """Whether :meth:`tick` does anything (call it periodically if so)."""

    def __init__(self, rule: R) -> None:
        self.rule = rule

    def _key(self, *parts: str) -> str:
        return f"{self.rule.id}|{'/'.join(parts)}"

    def owns(self, key: str) -> bool:
        """Whether a table key belongs to this rule."""
        return key.startswith(f"{self.rule.id}|")

    @abstractmethod
    def keys(self, message: object) -> list[str]:
        """State keys ``message`` updates; empty when the rule ignores it."""

    @abstractmethod
    def new_state(self, key: str) -> S:
        """A fresh state for ``key``."""

    @abstractmethod
    def load_state(self, data: dict[str, Any]) -> S:
        """Rebuild a state from its ``to_state()`` dict."""

    def state(self, key: str, data: dict[str, Any] | None = None) -> S:
        """The stored state ``data`` if any, else a fresh one for ``key``."""
        return self.new_state(key) if data is None else self.load_state(data)

    @abstractmethod
    def observe(self, message: Any, state: S) -> list[AlertV1]:
        """Update ``state`` (of ``keys(message)``) with ``message``; alerts it causes."""

    def tick(self, now_ns: int, state: S) -> list[AlertV1]:
        """Re-check ``state`` at wall-clock ``now_ns``; alerts it causes."""
        return []

    def idle(self, now_ns: int, state: S) -> bool:
        """Whether ``state`` holds nothing worth keeping at ``now_ns`` (may be deleted)."""
        return False

    @staticmethod
    def _out(alert: AlertV1 | None) -> list[AlertV1]:
        return [] if alert is None else [alert]
