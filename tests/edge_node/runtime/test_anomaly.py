"""Sensor windows: across block boundaries, channel mapping, value checks, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from edge_node.runtime import AnomalyDetector, ModelLoadError, SensorInputError
from edge_node.sources.base import SensorBlock
from tests.edge_node.runtime.conftest import (
    anomaly_manifest,
    classifier_model,
    classify_manifest,
    sensor_model,
)

RATE = 100.0
PERIOD_NS = 10_000_000


@pytest.fixture
def detector(make_package) -> AnomalyDetector:
    return AnomalyDetector(make_package(sensor_model(), anomaly_manifest()))


def block(
    values: np.ndarray,
    index: int,
    start_sample: int,
    *,
    channels: tuple[str, ...] = ("vib", "temp"),
    rate: float = RATE,
    source: str = "s1",
) -> SensorBlock:
    return SensorBlock(
        source=source,
        index=index,
        ts_ns=1_000_000_000 + start_sample * PERIOD_NS,
        mono_ns=5_000 + index,
        rate_hz=rate,
        channels=channels,
        values=values,
    )


def ramp(n: int, start: int = 0) -> np.ndarray:
    """Sample k: vib = sin(k), temp = 20 + 0.1 k (never stuck, always in range)."""
    k = np.arange(start, start + n, dtype=np.float64)
    return np.stack([np.sin(k), 20 + 0.1 * k], axis=1)


def expected_score(start: int) -> float:
    x = ramp(8, start)
    z = np.stack([x[:, 0], (x[:, 1] - 20.0) / 2.0])
    return float(np.mean(z**2))


@pytest.mark.parametrize("sizes", [[20], [3, 5, 7, 5], [1] * 20, [8, 12]])
def test_windows_across_blocks(detector, sizes):
    windows = []
    pos = 0
    for i, n in enumerate(sizes):
        windows += detector.push(block(ramp(n, pos), i, pos))
        pos += n
    # 20 samples, window 8, hop 4 -> starts 0, 4, 8, 12
    assert [w.start_ts_ns for w in windows] == [
        1_000_000_000 + s * PERIOD_NS for s in (0, 4, 8, 12)
    ]
    assert [w.ts_ns - w.start_ts_ns for w in windows] == [7 * PERIOD_NS] * 4
    for w, start in zip(windows, (0, 4, 8, 12), strict=True):
        assert w.score == pytest.approx(expected_score(start), rel=1e-5)
        assert w.sensor_fault is None
        assert w.window_s == pytest.approx(0.08)
    assert windows[0].features["temp_mean"] == pytest.approx(20.35)
    assert set(windows[0].features) == {
        f"{c}_{s}" for c in ("vib", "temp") for s in ("mean", "rms", "max")
    }


def test_mono_ns_is_the_block_that_completed_the_window(detector):
    assert detector.push(block(ramp(5), 0, 0)) == []
    (w,) = detector.push(block(ramp(4, 5), 1, 5))
    assert w.mono_ns == 5_000 + 1


def test_channels_mapped_by_name_with_extras(detector):
    data = ramp(8)
    shuffled = np.stack([np.full(8, 7.0), data[:, 1], data[:, 0]], axis=1)
    (w,) = detector.push(block(shuffled, 0, 0, channels=("extra", "temp", "vib")))
    assert w.score == pytest.approx(expected_score(0), rel=1e-5)


def test_missing_channel_is_a_clear_error(detector):
    with pytest.raises(SensorInputError, match=r"\['temp'\] are missing") as err:
        detector.push(block(ramp(8)[:, :1], 0, 0, channels=("vib",)))
    assert err.value.where == "source s1"


def test_rate_mismatch_is_a_clear_error(detector):
    with pytest.raises(SensorInputError, match=r"block rate is 50 Hz.*100 Hz"):
        detector.push(block(ramp(8), 0, 0, rate=50.0))


def test_values_shape_mismatch(detector):
    with pytest.raises(SensorInputError, match="shape"):
        detector.push(block(ramp(8), 0, 0, channels=("vib", "temp", "x")))


@pytest.mark.parametrize(
    ("column", "value", "fault"),
    [
        (0, np.nan, "non_finite"),
        (1, np.inf, "non_finite"),
        (0, 51.0, "out_of_range"),
        (1, -41.0, "out_of_range"),
    ],
)
def test_bad_values_are_sensor_faults(detector, column, value, fault):
    data = ramp(8)
    data[3, column] = value
    (w,) = detector.push(block(data, 0, 0))
    assert w.score is None
    assert w.sensor_fault == fault
    assert w.fault_channel == ("vib", "temp")[column]
    assert detector.faults == {fault: 1}
    assert all(np.isfinite(v) for v in w.features.values())


@pytest.mark.parametrize("value", [21.5, 46.1, 0.1])
def test_stuck_channel_is_a_sensor_fault(detector, value):
    # 46.1 and 0.1: a constant float column has a std of ~1e-14, not 0.
    data = ramp(8)
    data[:, 1] = value
    (w,) = detector.push(block(data, 0, 0))
    assert (w.sensor_fault, w.fault_channel, w.score) == ("stuck", "temp", None)


def test_fault_only_affects_windows_containing_it(detector):
    data = ramp(20)
    data[1, 0] = np.nan  # only in the window starting at 0
    faults = [w.sensor_fault for w in detector.push(block(data, 0, 0))]
    assert faults == ["non_finite", None, None, None]


def test_gap_in_block_index_restarts_windowing(detector):
    assert detector.push(block(ramp(6), 0, 0)) == []
    assert detector.push(block(ramp(6, 100), 2, 100)) == []  # block 1 was lost
    assert detector.gaps == 1
    (w,) = detector.push(block(ramp(2, 106), 3, 106))
    assert w.start_ts_ns == 1_000_000_000 + 100 * PERIOD_NS


def test_sources_have_separate_buffers(detector):
    assert detector.push(block(ramp(6), 0, 0, source="a")) == []
    assert detector.push(block(ramp(6), 0, 0, source="b")) == []
    (w,) = detector.push(block(ramp(2, 6), 1, 6, source="a"))
    assert w.source == "a"


def test_hop_longer_than_window_skips_samples(make_package):
    manifest = anomaly_manifest()
    manifest["input"] = {**manifest["input"], "hop": 12}
    det = AnomalyDetector(make_package(sensor_model(), manifest))
    windows = []
    for i in range(10):
        windows += det.push(block(ramp(5, 5 * i), i, 5 * i))
    assert [(w.start_ts_ns - 1_000_000_000) // PERIOD_NS for w in windows] == [0, 12, 24, 36]


def test_rejects_a_classifier_package(make_package):
    with pytest.raises(ModelLoadError, match="not a sensor anomaly model"):
        AnomalyDetector(make_package(classifier_model(), classify_manifest()))
