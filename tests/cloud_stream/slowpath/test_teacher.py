"""The teacher: load checks against the manifest, decoding, micro-batched classification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from cloud_stream.slowpath import CorruptFrame, Teacher
from cloud_stream.training.imagefolder import prepare, to_input
from pipeline.modelpkg import ModelPackageError, builtin_package, load_package, write_package


def _copy(name: str, dest: Path, **changes: object) -> Path:
    """A copy of a built-in package with some manifest fields changed (ONNX untouched)."""
    shutil.copytree(builtin_package(name).path, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(changes)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_classify_gives_one_distribution_per_image(teacher, shots):
    batch = teacher.classify([s.image for s in shots[:11]])
    assert len(batch) == 11
    assert batch.probs.shape == (11, len(teacher.labels))
    assert batch.runs == 2  # 8 + 3
    assert batch.latency_ms > 0
    for pred, row in zip(batch, batch.probs, strict=True):
        assert set(pred.probs) == set(teacher.labels)
        assert sum(pred.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert pred.label == max(pred.probs, key=lambda k: pred.probs[k])
        assert pred.score == pytest.approx(float(row.max()))
        assert 0.0 <= pred.score <= 1.0


def test_teacher_is_right_on_simulated_frames(teacher, shots):
    """A wrong preprocessing step (colour order, crop, scale) would sink this."""
    batch = teacher.classify([teacher.decode(s.jpeg) for s in shots])
    right = sum(p.label == s.label for p, s in zip(batch, shots, strict=True))
    assert right >= 21  # of 24; the teacher is ~98 % accurate on val


def test_batched_equals_one_by_one(teacher, shots):
    images = [s.image for s in shots[:10]]
    together = teacher.classify(images).probs
    alone = np.concatenate([teacher.classify([im]).probs for im in images])
    assert np.abs(together - alone).max() < 1e-5


def test_preprocessing_is_the_training_one(teacher, shots):
    """Same numbers as the training/evaluation path: prepare + to_input + the ONNX graph."""
    import onnxruntime as ort

    spec = teacher.spec
    x = to_input(np.stack([prepare(s.image, spec) for s in shots[:4]]), spec)
    sess = ort.InferenceSession(str(teacher.package.onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {spec.name: x})[0]
    assert np.abs(teacher.classify([s.image for s in shots[:4]]).probs - want).max() < 1e-5


def test_empty_input_is_an_empty_batch(teacher):
    batch = teacher.classify([])
    assert len(batch) == 0
    assert batch.runs == 0


def test_decode_gives_the_bgr_frame(teacher, shots):
    image = teacher.decode(shots[0].jpeg, width=320, height=240)
    assert image.shape == (240, 320, 3)
    assert image.dtype == np.uint8
    assert np.array_equal(image, shots[0].image)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not_jpeg"),
        (None, "truncated"),  # the first half of a real JPEG
        (b"\xff\xd8\xff\xe0" + b"\x13" * 400 + b"\xff\xd9", "undecodable"),
    ],
)
def test_corrupt_bytes_raise_corrupt_frame_with_a_reason(teacher, shots, data, reason):
    if data is None:
        data = shots[0].jpeg[: len(shots[0].jpeg) // 2]
    with pytest.raises(CorruptFrame) as err:
        teacher.decode(data)
    assert err.value.reason == reason
    assert err.value.hint


def test_decode_checks_the_size_from_the_metadata(teacher, shots):
    with pytest.raises(CorruptFrame, match="320x240") as err:
        teacher.decode(shots[0].jpeg, width=640, height=480)
    assert err.value.reason == "wrong_size"


def test_classify_refuses_a_non_image(teacher):
    with pytest.raises(ValueError, match="uint8"):
        teacher.classify([np.zeros((10, 10), np.float32)])


def test_refuses_an_anomaly_package():
    with pytest.raises(ModelPackageError, match="image classifier"):
        Teacher(builtin_package("machine-anomaly-fp32"))


def test_refuses_a_manifest_that_does_not_match_the_graph(tmp_path):
    spec = builtin_package("conveyor-teacher").manifest.input.model_dump(mode="json")
    bad = _copy("conveyor-teacher", tmp_path / "size", input={**spec, "width": 64})
    with pytest.raises(ModelPackageError, match="shape"):
        Teacher(load_package(bad))
    bad = _copy("conveyor-teacher", tmp_path / "name", input={**spec, "name": "pixels"})
    with pytest.raises(ModelPackageError, match="no input 'pixels'"):
        Teacher(load_package(bad))
    bad = _copy("conveyor-teacher", tmp_path / "out", output="scores")
    with pytest.raises(ModelPackageError, match="no output 'scores'"):
        Teacher(load_package(bad))


def test_refuses_a_class_count_that_does_not_match(tmp_path):
    m = builtin_package("conveyor-teacher").manifest
    labels = list(m.labels[:-1])
    per_class = {k: v for k, v in m.thresholds.per_class.items() if k in labels}
    thresholds = {**m.thresholds.model_dump(mode="json"), "per_class": per_class}
    bad = _copy("conveyor-teacher", tmp_path / "p", labels=labels, thresholds=thresholds)
    with pytest.raises(ModelPackageError, match="5 labels"):
        Teacher(load_package(bad))


def test_logits_output_goes_through_softmax(tmp_path, shots):
    """Declared logits: the probabilities are the softmax of the graph's output."""
    pkg = load_package(_copy("conveyor-teacher", tmp_path / "p", output_kind="logits"))
    t = Teacher(pkg, threads=1)
    raw = Teacher(builtin_package("conveyor-teacher"), threads=1).classify([shots[0].image])
    got = t.classify([shots[0].image]).probs[0]
    want = np.exp(raw.probs[0]) / np.exp(raw.probs[0]).sum()
    assert np.allclose(got, want, atol=1e-9)
    assert got.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("fixed", [1, 4])
def test_a_fixed_batch_graph_runs_in_its_own_batch_size(tmp_path, shots, fixed):
    src = builtin_package("conveyor-teacher")
    model = onnx.load(str(src.onnx_path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = fixed
    path = tmp_path / "fixed.onnx"
    onnx.save(model, str(path))
    fields = src.manifest.model_dump(mode="json", exclude={"file", "sha256", "bytes"})
    pkg = load_package(write_package(tmp_path / "pkg", path, fields))
    t = Teacher(pkg, threads=1, batch_size=16)
    assert t.batch_size == fixed
    images = [s.image for s in shots[:5]]
    batch = t.classify(images)
    assert batch.runs == -(-5 // fixed)
    want = Teacher(src, threads=1).classify(images).probs
    assert np.abs(batch.probs - want).max() < 1e-5
