"""sim.machine: determinism, fault signatures, pacing, dataset export, the built-in model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_node.sources.base import REGISTRY, SensorBlock
from edge_node.sources.machine import (
    CHANNELS,
    FaultSpec,
    MachineConfig,
    MachineSim,
    MachineSource,
    export_csv,
)

RATE = 2048.0


def _source(**kw: object) -> MachineSource:
    fields: dict[str, object] = {"name": "m1", "realtime": False, "load_changes": False}
    fields.update(kw)
    src = MachineSource(MachineConfig.model_validate(fields))
    src.open()
    return src


def _blocks(src: MachineSource, n: int) -> list[SensorBlock]:
    out = []
    for _ in range(n):
        b = src.read(timeout=0)
        assert b is not None
        out.append(b)
    return out


def _run(seconds: float, faults: tuple[FaultSpec, ...] = ()) -> np.ndarray:
    sim = MachineSim(MachineConfig(name="t", seed=3, load_changes=False, faults=faults))
    return np.concatenate([sim.step(int(RATE))[0] for _ in range(int(seconds))])


def _amplitude_at(x: np.ndarray, hz: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) / x.size
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    band = (freqs > hz * 0.9) & (freqs < hz * 1.1)
    return float(spec[band].max())


def test_registered_as_sim_machine() -> None:
    assert REGISTRY["sim.machine"] == (MachineConfig, MachineSource)
    assert MachineSource.kind == "sensor"


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    a = _blocks(_source(seed=7), 5)
    b = _blocks(_source(seed=7), 5)
    c = _blocks(_source(seed=8), 5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.values, y.values)
    assert not np.array_equal(a[0].values, c[0].values)


def test_blocks_have_the_configured_shape_channels_and_timestamps() -> None:
    blocks = _blocks(_source(block=256), 3)
    assert [b.index for b in blocks] == [0, 1, 2]
    assert blocks[0].channels == tuple(c.name for c in CHANNELS)
    assert blocks[0].values.shape == (256, 3)
    assert blocks[0].values.dtype == np.float64
    assert blocks[1].ts_ns - blocks[0].ts_ns == round(256 / RATE * 1e9)
    assert all(b.truth == "normal" for b in blocks)


def test_truth_follows_the_schedule_and_duration_ends_the_stream() -> None:
    src = _source(
        duration_s=2.0,
        block=512,
        faults=[{"fault": "imbalance", "start_s": 1.0, "duration_s": 0.5}],
    )
    truths = []
    while not src.exhausted:
        b = src.read(timeout=0)
        if b is not None:
            truths.append(b.truth)
    # 2 s of 0.25 s blocks; the fault covers the blocks starting at 1.0 s and 1.25 s.
    assert truths == ["normal"] * 4 + ["imbalance"] * 2 + ["normal"] * 2


def test_imbalance_raises_the_1x_amplitude() -> None:
    fault = (FaultSpec(fault="imbalance", start_s=0, duration_s=100),)
    shaft_hz = 1480.0 / 60.0 * (1 - 0.03 * 0.6)
    normal = _amplitude_at(_run(4)[:, 0], shaft_hz)
    faulty = _amplitude_at(_run(4, fault)[:, 0], shaft_hz)
    assert faulty > 3 * normal


def test_bearing_wear_adds_impulses_and_high_frequency_energy() -> None:
    fault = (FaultSpec(fault="bearing_wear", start_s=0, duration_s=100),)
    normal, faulty = _run(4)[:, 0], _run(4, fault)[:, 0]

    def kurtosis(x: np.ndarray) -> float:
        d = x - x.mean()
        return float(np.mean(d**4) / np.mean(d**2) ** 2)

    def hf_energy(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x)) ** 2
        return float(spec[np.fft.rfftfreq(x.size, 1 / RATE) > 500].sum())

    assert kurtosis(faulty) > kurtosis(normal) + 1
    assert hf_energy(faulty) > 5 * hf_energy(normal)


def test_overheating_drives_temperature_and_current_up() -> None:
    fault = (FaultSpec(fault="overheating", start_s=5, duration_s=100),)
    normal, faulty = _run(40), _run(40, fault)
    last = slice(-int(RATE), None)
    assert faulty[last, 1].mean() > normal[last, 1].mean() + 15
    assert faulty[last, 2].mean() > normal[last, 2].mean() * 1.15
    np.testing.assert_array_equal(faulty[: int(4 * RATE)], normal[: int(4 * RATE)])


def test_sensor_faults_dropout_stuck_spike() -> None:
    faults = (
        FaultSpec(fault="dropout", start_s=1, duration_s=1, channel="current_a"),
        FaultSpec(fault="stuck", start_s=3, duration_s=1, channel="temperature_c"),
        FaultSpec(fault="spike", start_s=5, duration_s=2, severity=1.0),
    )
    x = _run(8, faults)
    sec = int(RATE)
    assert np.isnan(x[sec : 2 * sec, 2]).all()
    assert not np.isnan(np.delete(x, np.s_[sec : 2 * sec], axis=0)).any()
    assert np.ptp(x[3 * sec : 4 * sec, 1]) == 0
    assert np.ptp(x[4 * sec : 5 * sec, 1]) > 0
    vib = CHANNELS[0]
    outliers = (x[:, 0] > vib.max) | (x[:, 0] < vib.min)
    assert 1 <= outliers[5 * sec : 7 * sec].sum() <= 40
    assert not outliers[: 5 * sec].any()


def test_realtime_paces_blocks() -> None:
    src = _source(realtime=True, block=2048)  # one block per second
    assert src.read(timeout=0) is None  # not due yet: returns at once, no wait
    assert not src.exhausted


def test_config_rejects_unknown_fields_and_faults() -> None:
    with pytest.raises(ValidationError):
        MachineConfig.model_validate({"name": "m", "colour": "red"})
    with pytest.raises(ValidationError):
        MachineConfig.model_validate(
            {"name": "m", "faults": [{"fault": "melting", "start_s": 0, "duration_s": 1}]}
        )


def test_export_csv_writes_the_three_splits(tmp_path: Path) -> None:
    summary = export_csv(tmp_path, seconds=30, seed=1)
    assert str(tmp_path) in summary
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["rate_hz"] == RATE
    labels: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        with (tmp_path / f"{split}.csv").open() as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["t_s", "vibration_g", "temperature_c", "current_a", "label"]
        assert len(rows) - 1 == 30 * RATE
        labels[split] = {r[4] for r in rows[1:]}
    assert labels["train"] == labels["val"] == {"normal"}
    assert {"bearing_wear", "imbalance", "overheating", "stuck", "dropout", "spike"} <= labels[
        "test"
    ]
    # Same seed, same files.
    again = tmp_path / "again"
    export_csv(again, seconds=30, seed=1)
    assert (again / "test.csv").read_bytes() == (tmp_path / "test.csv").read_bytes()


def test_builtin_model_scores_faults_above_normal() -> None:
    ort = pytest.importorskip("onnxruntime")
    from pipeline.modelpkg import AnomalyThresholds, SensorInput, builtin_package

    pkg = builtin_package("machine-anomaly-int8")
    m = pkg.manifest
    spec = m.input
    assert isinstance(spec, SensorInput)
    assert isinstance(m.thresholds, AnomalyThresholds)
    sess = ort.InferenceSession(str(pkg.onnx_path), providers=["CPUExecutionProvider"])
    mean = np.array([c.mean for c in spec.channels])
    std = np.array([c.std for c in spec.channels])

    def score(faults: tuple[FaultSpec, ...]) -> float:
        x = _run(3, faults)[-spec.window :]
        win = ((x - mean) / std).T[None].astype(np.float32)
        return float(sess.run(None, {spec.name: win})[0][0])

    normal = score(())
    assert normal < m.thresholds.raise_at
    for fault in ("bearing_wear", "imbalance"):
        assert score((FaultSpec(fault=fault, start_s=0, duration_s=10),)) > 2 * normal, fault
