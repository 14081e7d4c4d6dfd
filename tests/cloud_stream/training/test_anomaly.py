"""The sensor anomaly model: in-graph features, AUC, a tiny train/export/quantize/evaluate run,
user CSV data, and the committed packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from cloud_stream.training.anomaly_data import (
    AnomalyDataError,
    Split,
    channel_specs,
    load_split,
    windows,
)
from cloud_stream.training.anomaly_graph import FrontEnd, build_model
from cloud_stream.training.anomaly_model import Scorer, auc, percentile_thresholds

REPO = Path(__file__).resolve().parents[3]
BUILTIN = REPO / "pipeline" / "modelpkg" / "builtin"


# -- AUC ------------------------------------------------------------------------------------


def _auc_pairs(neg: np.ndarray, pos: np.ndarray) -> float:
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_matches_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    neg = rng.integers(0, 20, 300).astype(float)
    pos = rng.integers(5, 25, 200).astype(float)
    assert auc(neg, pos) == pytest.approx(_auc_pairs(neg, pos))


def test_auc_extremes() -> None:
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    assert np.isnan(auc(np.array([]), np.array([1.0])))


def test_thresholds_have_hysteresis() -> None:
    scores = np.random.default_rng(1).gamma(2.0, size=2000)
    thr = percentile_thresholds(scores)
    raise_at, clear_at = float(thr["raise_at"]), float(thr["clear_at"])  # type: ignore[arg-type]
    assert clear_at < raise_at
    assert np.mean(scores >= raise_at) == pytest.approx(0.005, abs=0.002)
    assert "p99.5" in str(thr["calibration"])


# -- features in the graph ------------------------------------------------------------------


def _reference_features(x: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The front-end in plain numpy, written independently of the graph builder."""
    eps = 1e-8
    frames = x.reshape(fe.channels, -1, fe.frame)
    frames = frames - frames.mean(axis=2, keepdims=True)
    hann = np.hanning(fe.frame + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * hann, axis=2)) ** 2 / np.sum(hann**2)
    e = fe.band_edges
    bands = np.stack([power[:, :, e[b] : e[b + 1]].sum(axis=2) for b in range(fe.bands)], -1)
    bands = np.log(bands.mean(axis=1) + eps)
    d = x - x.mean(axis=1, keepdims=True)
    var = (d**2).mean(axis=1) + eps
    stats = np.stack(
        [
            x.mean(axis=1),
            0.5 * np.log(var),
            np.log((d**4).mean(axis=1) / var**2 + eps),
            np.log(np.abs(d).max(axis=1) + eps) - 0.5 * np.log(var),
        ],
        axis=1,
    )
    return np.concatenate([bands, stats], axis=1).reshape(-1)


def test_graph_features_match_a_numpy_reference() -> None:
    fe = FrontEnd.default(3)
    rng = np.random.default_rng(2)
    t = np.arange(fe.window) / 2048.0
    x = rng.normal(size=(3, fe.window)) * [[1.0], [0.1], [2.0]]
    x[0] += 3 * np.sin(2 * np.pi * 25 * t)
    got = Scorer(build_model(fe))(x[None].astype(np.float32))[0]
    want = _reference_features(x.astype(np.float32).astype(np.float64), fe)
    assert got.shape == (fe.features,)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def test_windows_label_mixed_when_labels_change_inside() -> None:
    labels = np.array(["normal"] * 10 + ["imbalance"] * 6 + ["normal"] * 10)
    split = Split(Path("x.csv"), ("a",), np.arange(26.0)[:, None], labels, 10.0)
    specs = channel_specs(Path("/nonexistent"), split)
    wins, wl, starts = windows(split, specs, window=8, hop=4)
    assert wins.shape == (5, 1, 8)
    # windows [0, 8), [4, 12), [8, 16), [12, 20), [16, 24): the middle three see the change
    assert wl.tolist() == ["normal", "mixed", "mixed", "mixed", "normal"]
    np.testing.assert_allclose(starts, [0.0, 0.4, 0.8, 1.2, 1.6])


# -- data errors ----------------------------------------------------------------------------


def test_missing_split_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(AnomalyDataError) as err:
        load_split(tmp_path, "train")
    assert "train.csv" in str(err.value)
    assert "simulate machine" in (err.value.hint or "")


def test_non_numeric_value_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("t_s,a\n0,1\n0.1,abc\n")
    with pytest.raises(AnomalyDataError) as err:
        load_split(tmp_path, "train")
    assert str(tmp_path / "train.csv") in str(err.value)


# -- a tiny end-to-end run ------------------------------------------------------------------


@pytest.mark.slow
def test_train_export_quantize_evaluate_on_simulator_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from cloud_stream.training import anomaly
    from edge_node.sources.machine import export_csv
    from pipeline.modelpkg import load_package

    data, run = tmp_path / "data", tmp_path / "run"
    export_csv(data, seconds=40, seed=5)
    assert anomaly.train(data, run, task="anomaly", epochs=4, seed=0) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["train_task"] == "anomaly"
    assert meta["thresholds"]["clear_at"] <= meta["thresholds"]["raise_at"]

    fp32, int8 = tmp_path / "fp32", tmp_path / "int8"
    assert anomaly.export(run, fp32, version="0.1.0") == 0
    assert anomaly.quantize(fp32, data, int8, method="minmax") == 0
    p32, p8 = load_package(fp32), load_package(int8)
    assert p32.manifest.precision == "fp32"
    assert p8.manifest.precision == "int8"
    assert p8.manifest.name == "machine-anomaly-int8"
    assert p8.manifest.input == p32.manifest.input
    assert p8.manifest.labels == ("normal", "anomaly")
    for pkg in (p32, p8):  # the drift reference: quantile bins of normal val scores
        ref = pkg.manifest.score_reference
        assert ref is not None
        assert ref.samples == meta["metrics"]["val_windows"]
        assert max(ref.fractions) < 0.2

    report = tmp_path / "report"
    assert anomaly.evaluate([fp32, int8], data, report) == 0
    rep = json.loads((report / "report.json").read_text())
    assert [p["precision"] for p in rep["packages"]] == ["fp32", "int8"]
    m = rep["packages"][0]["metrics"]
    for key in ("auc", "auc_bearing_wear", "auc_imbalance", "auc_overheating"):
        assert 0.0 <= m[key] <= 1.0
    assert m["value_check_caught_dropout"] == 1.0
    assert m["value_check_caught_stuck"] == 1.0
    assert 0 <= rep["packages"][1]["vs_reference"]["decision_agreement"] <= 1
    assert "machine faults" in rep["covers"]
    assert (report / "report.png").stat().st_size > 1000
    assert "| auc |" in (report / "report.md").read_text()
    assert "AUC" in capsys.readouterr().out


@pytest.mark.slow
def test_train_accepts_user_csv_without_labels_or_dataset_json(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from cloud_stream.training import anomaly

    rng = np.random.default_rng(0)
    rate = 1000.0
    for split in ("train", "val"):
        t = np.arange(40_000) / rate
        x = np.sin(2 * np.pi * 31 * t) + 0.1 * rng.normal(size=t.size)
        p = 50 + 0.01 * rng.normal(size=t.size)
        rows = "\n".join(f"{a:.6f},{b:.5f},{c:.5f}" for a, b, c in zip(t, x, p, strict=True))
        (tmp_path / f"{split}.csv").write_text("t_s,accel,pressure\n" + rows + "\n")
    run = tmp_path / "run"
    assert anomaly.train(tmp_path, run, task="anomaly", epochs=2, seed=1) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["rate_hz"] == rate
    assert [c["name"] for c in meta["channels"]] == ["accel", "pressure"]
    assert all(c["min"] < c["max"] for c in meta["channels"])
    assert anomaly.export(run, tmp_path / "pkg", version="1.0.0") == 0


# -- the committed packages -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["machine-anomaly-int8", "machine-anomaly-fp32"])
def test_committed_package_is_small_valid_and_calibrated(name: str) -> None:
    from pipeline.modelpkg import builtin_package

    pkg = builtin_package(name)
    m = pkg.manifest
    assert m.task == "anomaly"
    assert m.output_kind == "score"
    assert m.input.kind == "sensor"
    assert [c.name for c in m.input.channels] == ["vibration_g", "temperature_c", "current_a"]
    assert m.thresholds.kind == "anomaly"
    assert 0 < m.thresholds.clear_at <= m.thresholds.raise_at
    assert m.metrics["auc"] >= 0.95
    for f in pkg.path.iterdir():
        assert f.stat().st_size < 2_000_000, f


def test_committed_int8_keeps_the_front_end_fp32() -> None:
    import onnx

    model = onnx.load(str(BUILTIN / "machine-anomaly-int8" / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops
    assert not any(
        n.op_type == "QuantizeLinear" and n.name.startswith("fe/") for n in model.graph.node
    )
