"""``sim.machine``: a seeded rotating-machine sensor node (vibration, temperature, current).

The physics is deliberately simple but has the structure real condition monitoring
sees: a shaft running at a slowly wandering speed with 1x..4x harmonics, a
line-frequency (2x 50 Hz) electromagnetic component, broadband noise, load steps
that move vibration, current and (slowly) temperature together. Faults are
injected on a schedule:

* machine faults: ``bearing_wear`` (impulses at the outer-race defect frequency
  ringing a ~700 Hz structural resonance, plus rising high-frequency noise),
  ``imbalance`` (a strong 1x), ``overheating`` (temperature drifts up, current up);
* sensor faults: ``stuck`` (a channel frozen), ``dropout`` (NaN runs), ``spike``
  (single out-of-range outliers). The edge runtime's value checks catch these.

The same seed and config give the same samples. :func:`export_csv` writes the
CSV dataset ``edgeloop models train --task anomaly`` reads.
"""

from __future__ import annotations

__all__ = [
    "CHANNELS",
    "MACHINE_FAULTS",
    "SENSOR_FAULTS",
    "FaultSpec",
    "MachineConfig",
    "MachineSim",
    "MachineSource",
    "export_csv",
    "fault_labels",
]

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge_node.sources.base import SensorBlock, Source, SourceConfig, SourceError, register
from pipeline.config.base import Section

logger = logging.getLogger(__name__)

FaultName = Literal["bearing_wear", "imbalance", "overheating", "stuck", "dropout", "spike"]
MACHINE_FAULTS: tuple[str, ...] = ("bearing_wear", "imbalance", "overheating")
SENSOR_FAULTS: tuple[str, ...] = ("stuck", "dropout", "spike")


@dataclass(frozen=True)
class Channel:
    """A channel's name, unit and physically possible range (beyond it: a sensor fault)."""

    name: str
    unit: str
    min: float
    max: float


CHANNELS: tuple[Channel, ...] = (
    Channel("vibration_g", "g", -16.0, 16.0),
    Channel("temperature_c", "degC", -40.0, 150.0),
    Channel("current_a", "A", 0.0, 100.0),
)
_NAMES = tuple(c.name for c in CHANNELS)
_RESONANCE_HZ = 700.0
_BPFO_RATIO = 3.57  # outer-race defect frequency / shaft frequency
_LINE_HZ = 50.0


class FaultSpec(Section):
    """One injected fault: what, when, how strong."""

    fault: FaultName = Field(description="Fault to inject")
    start_s: float = Field(ge=0, description="Start, seconds from the stream start")
    duration_s: float = Field(gt=0, description="How long it lasts, seconds")
    severity: float = Field(default=1.0, gt=0, le=5, description="1 = a clearly developed fault")
    channel: Literal["vibration_g", "temperature_c", "current_a"] = Field(
        default="vibration_g", description="Channel a sensor fault (stuck/dropout/spike) hits"
    )

    def active(self, t_s: float) -> bool:
        """True while ``t_s`` lies in the fault's interval."""
        return self.start_s <= t_s < self.start_s + self.duration_s


class MachineConfig(SourceConfig):
    """A simulated rotating machine (motor + bearing) with accelerometer, thermometer, ammeter."""

    type: Literal["sim.machine"] = Field(default="sim.machine", description="Source plugin key")
    rate_hz: float = Field(default=2048.0, ge=256, le=65536, description="Sample rate, Hz")
    block: int = Field(default=512, ge=16, le=65536, description="Samples per SensorBlock")
    rpm: float = Field(default=1480.0, ge=300, le=6000, description="Nominal shaft speed, rpm")
    load: float = Field(default=0.6, ge=0.0, le=1.0, description="Mean load, fraction of rated")
    load_changes: bool = Field(default=True, description="Random load steps every 10-30 s")
    ambient_c: float = Field(default=25.0, ge=-30, le=60, description="Ambient temperature")
    seed: int = Field(default=0, ge=0, description="Random seed; same seed, same samples")
    realtime: bool = Field(default=True, description="Pace blocks at the sample rate")
    duration_s: float | None = Field(
        default=None, gt=0, description="Stop after this many seconds; endless when unset"
    )
    faults: tuple[FaultSpec, ...] = Field(default=(), description="Fault schedule")


class MachineSim:
    """The signal model of a :class:`MachineConfig`, advanced block by block (vectorised)."""

    def __init__(self, config: MachineConfig) -> None:
        load = config.load
        self.rate = config.rate_hz
        self.rng = np.random.default_rng(config.seed)
        self.rpm = config.rpm
        self.mean_load = load
        self.load_changes = config.load_changes
        self.ambient = config.ambient_c
        self.faults = config.faults
        self.n = 0  # samples produced so far
        self.load = load
        self.load_target = load
        self.next_step_s = float(self.rng.uniform(10, 30))
        self.temp = self.ambient + 35.0 * load  # start at thermal steady state
        self.speed_dev = 0.0
        self.phase = self.rng.uniform(0, 2 * np.pi, 5)  # shaft, 2x line, bearing, 2 spare
        self.harm_phase = self.rng.uniform(0, 2 * np.pi, 4)
        self.ring_tail = np.zeros(0)
        self.stuck_value: dict[int, float] = {}  # schedule index -> frozen value
        t = np.arange(48) / self.rate
        self.kernel = np.exp(-t / 0.004) * np.sin(2 * np.pi * _RESONANCE_HZ * t)

    def set_operating_point(self, *, rpm: float, load: float) -> None:
        """Move to another speed and mean load (used to vary training data)."""
        self.rpm = rpm
        self.mean_load = load
        self.load_target = load

    def _severity(self, fault: str, t_s: float) -> float:
        return sum(f.severity for f in self.faults if f.fault == fault and f.active(t_s))

    def truth(self, t_s: float) -> str:
        """The fault active at ``t_s`` (the first in schedule order) or ``normal``."""
        for f in self.faults:
            if f.active(t_s):
                return f.fault
        return "normal"

    def step(self, n: int) -> tuple[np.ndarray, str]:
        """The next ``n`` samples, shape (n, 3), and the truth label at the block start."""
        rate, rng = self.rate, self.rng
        t0 = self.n / rate
        dt = n / rate
        t = np.arange(n) / rate
        if self.load_changes and t0 >= self.next_step_s:
            lo, hi = max(0.1, self.mean_load - 0.3), min(1.0, self.mean_load + 0.3)
            self.load_target = float(rng.uniform(lo, hi))
            self.next_step_s = t0 + float(rng.uniform(10, 30))
        load = self.load_target + (self.load - self.load_target) * np.exp(-t / 2.0)
        self.load = float(self.load_target + (self.load - self.load_target) * math.exp(-dt / 2.0))
        imbalance = self._severity("imbalance", t0)
        bearing = self._severity("bearing_wear", t0)
        heat = self._severity("overheating", t0)

        # Speed wanders slowly (random walk, pulled back) and drops with load (slip).
        self.speed_dev = 0.98 * self.speed_dev + 0.002 * float(rng.normal())
        shaft_hz = self.rpm / 60.0 * (1.0 - 0.03 * load) * (1.0 + self.speed_dev)
        shaft = self.phase[0] + 2 * np.pi * np.cumsum(shaft_hz) / rate
        line = self.phase[1] + 2 * np.pi * 2 * _LINE_HZ * (t + 1 / rate)
        vib = np.zeros(n)
        amps = (0.08 * (0.8 + 0.4 * load) * (1.0 + 4.0 * imbalance), 0.03, 0.015, 0.01)
        for k, amp in enumerate(amps, start=1):
            vib += amp * np.sin(k * shaft + self.harm_phase[k - 1])
        vib += 0.02 * load * np.sin(line)
        vib += 0.04 * rng.normal(size=n)
        if bearing > 0 or self.ring_tail.size:
            impulses = np.zeros(n)
            if bearing > 0:
                bphase = self.phase[2] + np.cumsum(_BPFO_RATIO * shaft_hz) / rate
                hits = np.flatnonzero(np.diff(np.floor(bphase), prepend=np.floor(self.phase[2])))
                impulses[hits] = 0.6 * bearing * (1 + 0.3 * rng.normal(size=hits.size))
                self.phase[2] = bphase[-1]
                hf = np.diff(rng.normal(size=n + 1))
                vib += 0.03 * bearing * hf
            ring = np.convolve(impulses, self.kernel)
            ring[: self.ring_tail.size] += self.ring_tail
            vib += ring[:n]
            self.ring_tail = ring[n:] if bearing > 0 else np.zeros(0)
        self.phase[0] = shaft[-1] % (2 * np.pi)
        self.phase[1] = line[-1] % (2 * np.pi)

        # First-order thermal model; a cooling fault adds heat and speeds the drift.
        target = self.ambient + 35.0 * load + 30.0 * heat
        tau = 90.0 if heat == 0 else 15.0
        temp = target + (self.temp - target) * np.exp(-(t + 1 / rate) / tau)
        self.temp = float(temp[-1])
        temp = temp + 0.05 * rng.normal(size=n)

        current = (4.0 + 12.0 * load) * (1.0 + 0.25 * heat)
        current = current * (1.0 + 0.02 * np.sin(line) + 0.005 * np.sin(shaft))
        current = current + 0.05 * rng.normal(size=n)

        values = np.stack([vib, temp, current], axis=1)
        self._sensor_faults(values, t0 + t)
        self.n += n
        return values, self.truth(t0)

    def _sensor_faults(self, values: np.ndarray, t_s: np.ndarray) -> None:
        for k, f in enumerate(self.faults):
            if f.fault not in SENSOR_FAULTS:
                continue
            mask = (t_s >= f.start_s) & (t_s < f.start_s + f.duration_s)
            if not mask.any():
                self.stuck_value.pop(k, None)
                continue
            col = _NAMES.index(f.channel)
            if f.fault == "stuck":
                first = int(np.argmax(mask))
                frozen = self.stuck_value.setdefault(k, float(values[first, col]))
                values[mask, col] = frozen
            elif f.fault == "dropout":
                values[mask, col] = np.nan
            else:  # spike: about 4 outliers a second, twice the channel's range at severity 1
                hits = mask & (self.rng.random(mask.size) < 4.0 / self.rate)
                ch = CHANNELS[col]
                values[hits, col] = ch.max + f.severity * (ch.max - ch.min)


@register(MachineConfig)
class MachineSource(Source):
    """Yields :class:`SensorBlock` s of the simulated machine; ``truth`` is the active fault."""

    kind = "sensor"

    def __init__(self, config: MachineConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self._sim: MachineSim | None = None
        self._index = 0
        self._t0_ns = 0
        self._mono0 = 0
        self._done = False

    def open(self) -> None:
        """Start the simulated clock."""
        self._sim = MachineSim(self.cfg)
        self._t0_ns, self._mono0 = time.time_ns(), time.perf_counter_ns()
        self._index, self._done = 0, False
        logger.info("machine simulator %s: %d faults scheduled", self.name, len(self.cfg.faults))

    def read(self, timeout: float = 1.0) -> SensorBlock | None:
        """The next block; with ``realtime`` it is released when its last sample is due."""
        if self._sim is None:
            self.open()
        sim = self._sim
        assert sim is not None
        c = self.cfg
        start_s = self._index * c.block / c.rate_hz
        if c.duration_s is not None and start_s >= c.duration_s:
            self._done = True
            return None
        if c.realtime:
            due_ns = self._mono0 + round((self._index + 1) * c.block / c.rate_hz * 1e9)
            wait_s = (due_ns - time.perf_counter_ns()) / 1e9
            if wait_s > timeout:
                time.sleep(max(timeout, 0.0))
                return None
            if wait_s > 0:
                time.sleep(wait_s)
        values, truth = sim.step(c.block)
        block = SensorBlock(
            source=self.name,
            index=self._index,
            ts_ns=self._t0_ns + round(start_s * 1e9),
            mono_ns=time.perf_counter_ns(),
            rate_hz=c.rate_hz,
            channels=_NAMES,
            values=values,
            truth=truth,
        )
        self._index += 1
        return block

    @property
    def exhausted(self) -> bool:
        """True after ``duration_s`` has been produced."""
        return self._done


# -- dataset export ---------------------------------------------------------------------------

MIN_EXPORT_S = 30.0
_OPERATING_POINTS = ((1000.0, 0.4), (1200.0, 0.7), (1480.0, 0.5), (1480.0, 0.9), (1780.0, 0.6))


def _simulate(
    seconds: float, seed: int, rate: float, faults: tuple[FaultSpec, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Run the simulator through all operating points; samples (n, 3) and labels (n,)."""
    block = int(rate)  # one second per step keeps it vectorised and fast
    steps = max(1, round(seconds))
    sim = MachineSim(MachineConfig(name="export", rate_hz=rate, seed=seed, faults=faults))
    # 30 s at each operating point, in random order and with some speed jitter, so that
    # the thermal lag meets every load change in the data.
    pick = np.random.default_rng(seed + 10_000)
    out = np.empty((steps * block, len(CHANNELS)))
    for i in range(steps):
        if i % 30 == 0:
            rpm, load = _OPERATING_POINTS[int(pick.integers(len(_OPERATING_POINTS)))]
            sim.set_operating_point(rpm=rpm * float(pick.uniform(0.95, 1.05)), load=load)
        values, _ = sim.step(block)
        out[i * block : (i + 1) * block] = values
    labels = fault_labels(np.arange(out.shape[0]) / rate, faults)
    return out, labels


def fault_labels(t_s: np.ndarray, faults: tuple[FaultSpec, ...]) -> np.ndarray:
    """Per-sample truth: the first scheduled fault active at each time, else ``normal``."""
    labels = np.full(t_s.shape, "normal", dtype="<U16")
    for f in reversed(faults):
        labels[(t_s >= f.start_s) & (t_s < f.start_s + f.duration_s)] = f.fault
    return labels


def _test_schedule(seconds: float) -> tuple[FaultSpec, ...]:
    """Machine faults at two severities with normal gaps, sensor faults, overheating last."""
    order = [
        ("bearing_wear", 1.0),
        ("imbalance", 1.0),
        ("spike", 1.0),
        ("bearing_wear", 0.25),
        ("stuck", 1.0),
        ("imbalance", 0.25),
        ("dropout", 1.0),
        ("bearing_wear", 0.1),
        ("imbalance", 0.1),
        ("overheating", 1.0),
    ]
    # Whole seconds: the exporter steps the simulator one second at a time. Overheating
    # runs to the end: after it the machine stays hot for minutes, neither normal nor faulty.
    slot = seconds / (len(order) + 2)
    specs = []
    for i, (name, sev) in enumerate(order):
        start = float(round((i + 1.5) * slot))
        last = i == len(order) - 1
        duration = seconds - start if last else float(max(1, round(slot * 0.6)))
        specs.append(
            FaultSpec.model_validate(
                {"fault": name, "start_s": start, "duration_s": duration, "severity": sev}
            )
        )
    return tuple(specs)


def _write(path: Path, values: np.ndarray, labels: np.ndarray, rate: float) -> None:
    """Write one split; numpy string ops keep it vectorised (about 1 s per 10 min of data)."""
    # Time with 1e-9 s resolution so that the rate can be recovered from it exactly.
    text = np.char.mod("%.9f", np.arange(values.shape[0]) / rate)
    for j in range(values.shape[1]):
        text = np.char.add(np.char.add(text, ","), np.char.mod("%.6g", values[:, j]))
    text = np.char.add(np.char.add(text, ","), labels.astype(str))
    with path.open("w", newline="") as fh:
        fh.write(",".join(("t_s", *_NAMES, "label")) + "\n")
        fh.write("\n".join(text.tolist()))
        fh.write("\n")


def export_csv(out: Path, *, seconds: float, seed: int) -> str:
    """Write ``train.csv``, ``val.csv`` (normal only) and ``test.csv`` (faults) to ``out``.

    Args:
        out: Folder to write to (created).
        seconds: Seconds of data per split.
        seed: Random seed; the splits use seed, seed+1 and seed+2.

    Returns:
        A one-line summary.
    """
    if seconds < MIN_EXPORT_S:
        raise SourceError(
            f"{seconds:g} s per split is too short for the test split's fault schedule",
            where="sim.machine export",
            hint=f"use at least {MIN_EXPORT_S:g} s (--seconds)",
        )
    rate = 2048.0
    out.mkdir(parents=True, exist_ok=True)
    schedule = _test_schedule(seconds)
    counts: dict[str, dict[str, int]] = {}
    for offset, (split, faults) in enumerate((("train", ()), ("val", ()), ("test", schedule))):
        values, labels = _simulate(seconds, seed + offset, rate, faults)
        _write(out / f"{split}.csv", values, labels, rate)
        names, n = np.unique(labels.astype(str), return_counts=True)
        counts[split] = {str(k): int(v) for k, v in zip(names, n, strict=True)}
    meta = {
        "source": "sim.machine",
        "seed": seed,
        "seconds_per_split": seconds,
        "rate_hz": rate,
        "channels": [
            {"name": c.name, "unit": c.unit, "min": c.min, "max": c.max} for c in CHANNELS
        ],
        "machine_faults": list(MACHINE_FAULTS),
        "sensor_faults": list(SENSOR_FAULTS),
        "test_schedule": [f.model_dump() for f in schedule],
        "samples": counts,
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return (
        f"wrote {out}: train/val/test {seconds:g} s each at {rate:g} Hz, "
        f"test faults {sorted(k for k in counts['test'] if k != 'normal')}"
    )
