"""Quantize and evaluate the committed conveyor packages (onnx/onnxruntime only, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_stream.training import vision
from cloud_stream.training.imagefolder import TrainingDataError
from edge_node.sources.conveyor import export_dataset
from pipeline.modelpkg import BUILTIN_DIR, ClassifyThresholds, builtin_package, load_package

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("conveyor-fp32", "conveyor-int8", "conveyor-teacher")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("conveyor")
    export_dataset(root / "base", count=60, seed=11, condition=None, width=160)
    export_dataset(root / "dim_light", count=20, seed=12, condition="dim_light", width=160)
    return root


def test_builtin_packages_are_consistent():
    fp32, int8, teacher = (builtin_package(n) for n in PACKAGES)
    assert fp32.manifest.precision == "fp32"
    assert int8.manifest.precision == "int8"
    assert teacher.manifest.precision == "fp32"
    assert fp32.manifest.labels == int8.manifest.labels == teacher.manifest.labels
    assert fp32.manifest.input == int8.manifest.input
    assert fp32.manifest.output_kind == int8.manifest.output_kind == "probs"
    assert int8.manifest.bytes * 3.5 <= fp32.manifest.bytes
    for pkg in (fp32, int8, teacher):
        assert pkg.manifest.opset == 17
        assert pkg.manifest.input.name == "input"
        assert isinstance(pkg.manifest.thresholds, ClassifyThresholds)
        assert set(pkg.manifest.thresholds.per_class) == set(pkg.manifest.labels)
        assert pkg.onnx_path.stat().st_size < 2 * 1024 * 1024
    calib = json.loads((BUILTIN_DIR / "conveyor-int8" / "calibration.json").read_text())
    assert calib["chosen"] in calib["methods"]


def test_quantize_minmax_writes_an_int8_package(data, tmp_path):
    out = tmp_path / "q"
    assert vision.quantize(BUILTIN_DIR / "conveyor-fp32", data / "base", out, method="minmax") == 0
    pkg = load_package(out)
    fp32 = builtin_package("conveyor-fp32").manifest
    assert pkg.manifest.precision == "int8"
    assert pkg.manifest.name == "q"
    assert pkg.manifest.labels == fp32.labels
    assert pkg.manifest.bytes * 3 < fp32.bytes
    assert 0.0 <= pkg.manifest.metrics["minmax_agreement"] <= 1.0
    ref = pkg.manifest.score_reference
    assert ref is not None
    assert ref.samples == len(list((data / "base" / "val").rglob("*.png")))
    assert "INT8" in ref.source
    calib = json.loads((out / "calibration.json").read_text())
    assert calib["chosen"] == "minmax"
    assert list(calib["methods"]) == ["minmax"]


def test_quantize_refuses_an_unknown_method(data, tmp_path):
    with pytest.raises(TrainingDataError, match="unknown calibration method"):
        vision.quantize(BUILTIN_DIR / "conveyor-fp32", data / "base", tmp_path, method="kl")


def test_evaluate_writes_json_markdown_and_plot(data, tmp_path):
    pkgs = [BUILTIN_DIR / n for n in PACKAGES]
    assert vision.evaluate(pkgs, data, tmp_path) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["name"]: r for r in report["packages"]}
    assert set(rows) == set(PACKAGES)
    assert rows["conveyor-fp32"]["agreement_with_first"] == 1.0
    for r in rows.values():
        assert 0.0 <= r["accuracy"] <= 1.0
        assert 0.0 <= r["escalation_rate"] <= 1.0
        assert r["latency_ms"] > 0
        assert set(r["per_class"]) == set(builtin_package("conveyor-fp32").manifest.labels)
    assert rows["conveyor-int8"]["size_ratio_vs_first"] >= 3.5
    assert report["edge"] == "conveyor-int8"
    assert report["teacher"] == "conveyor-teacher"
    assert 0.0 <= report["cascade"]["accuracy"] <= 1.0
    assert report["images"] == 9  # the test split of 60 frames
    assert report["drift"]["dim_light"]["images"] == 20
    md = (tmp_path / "report.md").read_text()
    assert "conveyor-int8" in md
    assert "dim_light" in md
    plot = cv2.imread(str(tmp_path / "plot.png"))
    assert plot is not None
    assert plot.shape[0] > 100
    assert np.isfinite(rows["conveyor-int8"]["accuracy"])


def test_evaluate_needs_a_test_split(data, tmp_path):
    flat = tmp_path / "flat"
    for lab in ("ok", "dent"):
        (flat / "train" / lab).mkdir(parents=True)
        src = next((data / "base" / "train").glob("*/*.png"))
        (flat / "train" / lab / "0.png").write_bytes(src.read_bytes())
    with pytest.raises(TrainingDataError, match="no test split"):
        vision.evaluate([BUILTIN_DIR / "conveyor-int8"], flat, tmp_path / "out")


def test_quantize_and_evaluate_do_not_import_torch():
    code = (
        "import sys\n"
        "import cloud_stream.training.vision, cloud_stream.training.report\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
