"""Anomaly scoring of sensor windows: windowing across blocks, value checks, the model.

Windows of ``SensorInput.window`` samples start every ``hop`` samples of one
source's stream; blocks of any length feed a per-source buffer. A window whose
values cannot be right (NaN/inf, outside the channel's physical range, or a
channel stuck at one value) is not scored: it is returned with ``sensor_fault``
set so the node reports a sensor fault instead of a machine anomaly.
"""

from __future__ import annotations

__all__ = ["AnomalyDetector"]

import logging
import time
from dataclasses import dataclass

import numpy as np

from edge_node.runtime.errors import ModelLoadError, SensorInputError
from edge_node.runtime.results import AnomalyWindow, SensorFault
from edge_node.runtime.session import ModelSession
from edge_node.sources.base import SensorBlock
from pipeline.modelpkg import AnomalyThresholds, ModelPackage, SensorInput

logger = logging.getLogger(__name__)

#: A block whose timestamp is further than this from where the stream should be
#: (beyond one window) starts a new stream: windows never span a gap.
GAP_TOLERANCE_S = 1.0
_MAX_FEATURES = 64


@dataclass
class _Stream:
    """Buffered samples of one source: ``buf[:, :fill]`` starts at absolute sample ``base``."""

    buf: np.ndarray
    fill: int = 0
    base: int = 0
    next_start: int = 0
    last_index: int = -1
    expect_ts_ns: int = 0


def _feature_name(channel: str, stat: str) -> str:
    return f"{channel[: 63 - len(stat)]}_{stat}"


class AnomalyDetector:
    """Scores sensor windows with one ``anomaly`` model package.

    Args:
        package: A checked package whose task is ``anomaly``.
        threads: onnxruntime intra-op threads.
        warmup: Warm-up runs at load.
        stuck_min_std: A channel whose peak-to-peak range over a window is at or
            below this is stuck (0: only an exactly constant channel).

    Raises:
        ModelLoadError: the package is not an anomaly model or does not load.
    """

    def __init__(
        self,
        package: ModelPackage,
        *,
        threads: int = 1,
        warmup: int = 3,
        stuck_min_std: float = 0.0,
    ) -> None:
        m = package.manifest
        if m.task != "anomaly" or not isinstance(m.input, SensorInput):
            raise ModelLoadError(
                f"model {m.name} is a {m.task} model, not a sensor anomaly model",
                where=str(package.path),
                hint="give this sensor source an anomaly model package",
            )
        self.package = package
        self.manifest = m
        self.spec: SensorInput = m.input
        self.session = ModelSession(package, threads=threads, warmup=warmup)
        chans = self.spec.channels
        self.channels: tuple[str, ...] = tuple(c.name for c in chans)
        self._mean = np.array([c.mean for c in chans], dtype=np.float64)[:, None]
        self._std = np.array([c.std for c in chans], dtype=np.float32)[:, None]
        self._min = np.array([c.min for c in chans], dtype=np.float64)
        self._max = np.array([c.max for c in chans], dtype=np.float64)
        self._stuck_std = stuck_min_std
        self._tensor = np.empty((1, len(chans), self.spec.window), dtype=np.float32)
        self._streams: dict[str, _Stream] = {}
        self._stats = ("mean", "rms", "max") if 3 * len(chans) <= _MAX_FEATURES else ("rms",)
        self.faults: dict[str, int] = {}
        self.gaps = 0

    @property
    def thresholds(self) -> AnomalyThresholds:
        """The manifest's anomaly thresholds."""
        assert isinstance(self.manifest.thresholds, AnomalyThresholds)
        return self.manifest.thresholds

    def reset(self, source: str | None = None) -> None:
        """Forget buffered samples of one source (or all)."""
        if source is None:
            self._streams.clear()
        else:
            self._streams.pop(source, None)

    # --- input checks -----------------------------------------------------------------
    def _columns(self, block: SensorBlock) -> list[int]:
        where = f"source {block.source}"
        rate = self.spec.rate_hz
        if abs(block.rate_hz - rate) > 1e-6 * rate:
            raise SensorInputError(
                f"block rate is {block.rate_hz:g} Hz, model {self.manifest.name} was trained "
                f"at {rate:g} Hz",
                where=where,
                hint="set the sensor source's rate to the model's rate (no resampling is done)",
            )
        values = block.values
        if values.ndim != 2 or values.shape[1] != len(block.channels):
            raise SensorInputError(
                f"block values have shape {values.shape}, expected (samples, "
                f"{len(block.channels)}) for channels {list(block.channels)}",
                where=where,
                hint="the source must deliver one column per named channel",
            )
        missing = [c for c in self.channels if c not in block.channels]
        if missing:
            raise SensorInputError(
                f"channels {missing} are missing; the block has {list(block.channels)}",
                where=where,
                hint=f"model {self.manifest.name} needs channels {list(self.channels)}; "
                "rename the source's channels or pick another model",
            )
        return [block.channels.index(c) for c in self.channels]

    def _stream(self, block: SensorBlock) -> _Stream:
        s = self._streams.get(block.source)
        n = block.values.shape[0]
        tolerance = int((GAP_TOLERANCE_S + self.spec.window_s) * 1e9)
        if s is not None and (
            block.index != s.last_index + 1 or abs(block.ts_ns - s.expect_ts_ns) > tolerance
        ):
            logger.info("sensor source %s: gap before block %d", block.source, block.index)
            self.gaps += 1
            s = None
        if s is None:
            cap = self.spec.window + max(self.spec.hop, n)
            s = _Stream(buf=np.empty((len(self.channels), cap), dtype=np.float64))
            self._streams[block.source] = s
        s.last_index = block.index
        s.expect_ts_ns = block.ts_ns + round(n * 1e9 / self.spec.rate_hz)
        return s

    # --- windowing ----------------------------------------------------------------------
    def push(self, block: SensorBlock) -> list[AnomalyWindow]:
        """Add one block; score every window it completes.

        Returns:
            The windows completed by this block, oldest first; faulty ones unscored.

        Raises:
            SensorInputError: a channel is missing, the rate differs from the model's,
                or the values array has the wrong shape.
            InferenceError: onnxruntime failed.
        """
        cols = self._columns(block)
        s = self._stream(block)
        data = block.values[:, cols].T  # (C, n)
        n = data.shape[1]
        block_start = s.base + s.fill
        if s.fill + n > s.buf.shape[1]:
            grown = np.empty((s.buf.shape[0], s.fill + n + self.spec.hop), dtype=np.float64)
            grown[:, : s.fill] = s.buf[:, : s.fill]
            s.buf = grown
        s.buf[:, s.fill : s.fill + n] = data
        s.fill += n
        period = 1e9 / self.spec.rate_hz
        window = self.spec.window
        out: list[AnomalyWindow] = []
        while s.next_start + window <= s.base + s.fill:
            lo = s.next_start - s.base
            end = s.next_start + window - 1  # absolute index of the last sample
            ts_end = block.ts_ns + round((end - block_start) * period)
            out.append(
                self._score(
                    block.source,
                    s.buf[:, lo : lo + window],
                    ts_end,
                    ts_end - round((window - 1) * period),
                    block.mono_ns,
                )
            )
            s.next_start += self.spec.hop
        drop = min(s.next_start - s.base, s.fill)
        if drop > 0:
            s.buf[:, : s.fill - drop] = s.buf[:, drop : s.fill]
            s.fill -= drop
            s.base += drop
        return out

    # --- one window -----------------------------------------------------------------
    def _check(self, x: np.ndarray) -> tuple[SensorFault, str] | None:
        finite = np.isfinite(x)
        if not finite.all():
            return "non_finite", self.channels[int(np.argmin(finite.all(axis=1)))]
        bad = (x.min(axis=1) < self._min) | (x.max(axis=1) > self._max)
        if bad.any():
            return "out_of_range", self.channels[int(np.argmax(bad))]
        # Peak-to-peak, not std: the std of a constant float array is often ~1e-17, not 0.
        stuck = np.ptp(x, axis=1) <= self._stuck_std
        if stuck.any():
            return "stuck", self.channels[int(np.argmax(stuck))]
        return None

    def _features(self, x: np.ndarray) -> dict[str, float]:
        feats: dict[str, float] = {}
        for i, name in enumerate(self.channels):
            row = x[i][np.isfinite(x[i])]
            if row.size == 0:
                continue
            for stat in self._stats:
                if stat == "mean":
                    v = float(row.mean())
                elif stat == "rms":
                    v = float(np.sqrt(np.mean(row * row)))
                else:
                    v = float(row.max())
                feats[_feature_name(name, stat)] = v
        return feats

    def _score(
        self, source: str, x: np.ndarray, ts_ns: int, start_ts_ns: int, mono_ns: int
    ) -> AnomalyWindow:
        start = time.perf_counter_ns()
        fault = self._check(x)
        score: float | None = None
        if fault is None:
            np.subtract(x, self._mean, out=self._tensor[0], casting="unsafe")
            np.divide(self._tensor[0], self._std, out=self._tensor[0])
            score = float(self.session.run(self._tensor).reshape(-1)[0])
        else:
            self.faults[fault[0]] = self.faults.get(fault[0], 0) + 1
            logger.debug("sensor fault %s on %s/%s", fault[0], source, fault[1])
        return AnomalyWindow(
            source=source,
            score=score,
            ts_ns=ts_ns,
            start_ts_ns=start_ts_ns,
            mono_ns=mono_ns,
            window_s=self.spec.window_s,
            features=self._features(x),
            sensor_fault=fault[0] if fault else None,
            fault_channel=fault[1] if fault else None,
            latency_ms=(time.perf_counter_ns() - start) / 1e6,
        )
