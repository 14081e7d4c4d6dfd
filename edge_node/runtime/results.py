"""What the runtime hands to the router and the service: classifications and scored windows."""

from __future__ import annotations

__all__ = ["AnomalyWindow", "Classification", "SensorFault"]

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SensorFault = Literal["non_finite", "out_of_range", "stuck"]


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome of one image classification.

    Attributes:
        labels: Class labels in output order.
        probs: Probabilities, float64, same order as ``labels``, summing to 1.
        index: Index of the top-1 class.
        label: Top-1 label.
        score: Top-1 probability.
        margin: Top-1 minus top-2 probability (top-1 probability for one class).
        entropy: Entropy of ``probs`` in nats.
        latency_ms: Preprocessing plus inference time of this call.
        input_drift: Which input statistic fell outside the training range
            (``brightness`` of a channel, ``contrast``), or None.
    """

    labels: tuple[str, ...]
    probs: np.ndarray
    index: int
    label: str
    score: float
    margin: float
    entropy: float
    latency_ms: float = 0.0
    input_drift: str | None = None

    def prob_dict(self) -> dict[str, float]:
        """Probabilities by label, for ``ResultV1.probs``."""
        return {lab: float(p) for lab, p in zip(self.labels, self.probs, strict=True)}

    @classmethod
    def from_probs(
        cls,
        labels: tuple[str, ...],
        probs: np.ndarray,
        latency_ms: float = 0.0,
        input_drift: str | None = None,
    ) -> Classification:
        """Build from a probability vector (top-1, margin and entropy are derived).

        Args:
            labels: Class labels in output order.
            probs: Non-negative probabilities summing to 1, one per label.
            latency_ms: Time the classification took.
            input_drift: See the class attributes.
        """
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        index = int(np.argmax(p))
        top = float(p[index])
        second = float(np.partition(p, -2)[-2]) if p.size > 1 else 0.0
        nz = p[p > 0]
        entropy = float(max(0.0, -np.sum(nz * np.log(nz))))
        return cls(
            labels=labels,
            probs=p,
            index=index,
            label=labels[index],
            score=top,
            margin=max(0.0, top - second),
            entropy=entropy,
            latency_ms=latency_ms,
            input_drift=input_drift,
        )


@dataclass(frozen=True, slots=True)
class AnomalyWindow:
    """One sensor window: scored, or flagged as a sensor fault and not scored.

    Attributes:
        source: Source the window came from.
        score: Anomaly score from the model; None when ``sensor_fault`` is set.
        ts_ns: UTC time of the window's last sample (the result's ``ts``).
        start_ts_ns: UTC time of the window's first sample.
        mono_ns: ``perf_counter_ns()`` when the block that completed the window was in
            hand; decision and action latency start here.
        window_s: Window length in seconds.
        features: Per-channel statistics (``<channel>_mean``, ``_rms``, ``_max``) over
            the finite samples, for ``AnomalySummary.features``.
        sensor_fault: Why the window was not scored, or None.
        fault_channel: The channel that showed the fault, or None.
        latency_ms: Checks plus inference time of this window.
    """

    source: str
    score: float | None
    ts_ns: int
    start_ts_ns: int
    mono_ns: int
    window_s: float
    features: dict[str, float] = field(default_factory=dict)
    sensor_fault: SensorFault | None = None
    fault_channel: str | None = None
    latency_ms: float = 0.0
