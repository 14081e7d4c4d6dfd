"""Train, export and quantize end to end on a tiny dataset (needs torch: edgeloop[train])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs torch: pip install 'edgeloop[train]'")

from cloud_stream.training import vision
from cloud_stream.training.calibrate import predict, session
from cloud_stream.training.imagefolder import TrainingDataError
from edge_node.sources.conveyor import export_dataset
from pipeline.modelpkg import load_package


def test_train_export_quantize_tiny(tmp_path):
    data = tmp_path / "data"
    export_dataset(data, count=40, seed=5, condition=None, width=128)
    run = tmp_path / "run"
    assert vision.train(data, run, task="classifier", epochs=1, seed=0) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["train_task"] == "classifier"
    assert meta["labels"][0] == "ok"
    assert (run / meta["weights"]).is_file()
    assert 0.0 <= meta["metrics"]["val_accuracy"] <= 1.0
    assert meta["metrics"]["device"] == "cpu"  # the edge model always trains on the CPU

    assert vision.export(run, tmp_path / "fp32", version="0.0.1") == 0
    pkg = load_package(tmp_path / "fp32")
    m = pkg.manifest
    assert (m.precision, m.opset, m.output_kind, m.version) == ("fp32", 17, "probs", "0.0.1")
    assert m.input.name == "input"
    assert list(m.labels) == meta["labels"]
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 96)).astype(np.float32)
    probs = predict(session(pkg.onnx_path), x)
    assert probs.shape == (2, len(m.labels))
    assert np.allclose(probs.sum(1), 1.0, atol=1e-4)  # softmax is inside the graph
    val_images = len(list((data / "val").rglob("*.png")))
    assert m.score_reference is not None
    assert m.score_reference.samples == val_images

    assert vision.quantize(tmp_path / "fp32", data, tmp_path / "int8", method="minmax") == 0
    int8 = load_package(tmp_path / "int8").manifest
    assert int8.precision == "int8"
    assert int8.score_reference is not None
    assert "INT8" in int8.score_reference.source  # measured on the INT8 model, not copied

    # Training again into the same run folder continues from its weights.
    assert vision.train(data, run, task="classifier", epochs=1, seed=1) == 0
    again = json.loads((run / "run.json").read_text())
    assert again["metrics"]["epochs"] == 2
    assert again["metrics"]["runs"] == 2
    assert not (run / "init.pt").exists()
    with pytest.raises(TrainingDataError, match="different model"):
        vision.train(data, run, task="teacher", epochs=1, seed=0)


def test_train_refuses_an_unknown_task(tmp_path):
    with pytest.raises(TrainingDataError, match="unknown vision task"):
        vision.train(tmp_path, tmp_path / "run", task="anomaly", epochs=1, seed=0)


def test_fit_with_label_smoothing_on_the_cpu(tmp_path: Path) -> None:
    from cloud_stream.training.nets import ARCHS
    from cloud_stream.training.torchtrain import fit, load_weights
    from pipeline.modelpkg import ImageInput

    spec = ImageInput(width=32, height=32, color="rgb")
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    ys = np.arange(16, dtype=np.int64) % 3
    result = fit(
        ARCHS["teacher"],
        spec,
        (xs, ys),
        (xs[:4], ys[:4]),
        classes=3,
        epochs=1,
        seed=0,
        weights=tmp_path / "w.pt",
        batch=8,
        label_smoothing=0.1,
        device="cpu",
    )
    assert result.device == "cpu"
    assert result.epochs == 1
    net = load_weights(ARCHS["teacher"], tmp_path / "w.pt", channels=3, classes=3)
    assert sum(p.numel() for p in net.parameters()) == result.params
