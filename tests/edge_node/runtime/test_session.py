"""Load checks of the onnxruntime session: every mismatch is a ModelLoadError that says where."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge_node.runtime import InferenceError, ModelLoadError, ModelSession
from edge_node.runtime.onnxinfo import OnnxFormatError, read_opsets
from tests.edge_node.runtime.conftest import (
    anomaly_manifest,
    classifier_model,
    classify_manifest,
    sensor_model,
)


def test_loads_and_runs_a_matching_classifier(make_package):
    pkg = make_package(classifier_model(), classify_manifest())
    sess = ModelSession(pkg, warmup=2)
    out = sess.run(np.zeros((1, 3, 16, 16), np.float32))
    assert out.shape == (1, 3)
    assert out.sum() == pytest.approx(1.0)
    assert sess.opset == 17
    assert sess.input_shape == ("N", 3, 16, 16)
    assert sess.last_ms > 0


def test_fixed_batch_of_one_is_accepted(make_package):
    pkg = make_package(classifier_model(batch=1), classify_manifest())
    assert ModelSession(pkg, warmup=0).input_shape[0] == 1


def test_wrong_input_size_names_the_axis(make_package):
    pkg = make_package(classifier_model(height=32, width=32), classify_manifest())
    with pytest.raises(ModelLoadError, match=r"axis 2: 32 != 16") as err:
        ModelSession(pkg)
    assert err.value.where == str(pkg.onnx_path)
    assert err.value.hint


def test_wrong_layout_is_caught(make_package):
    pkg = make_package(
        classifier_model(),
        classify_manifest(input={"kind": "image", "width": 16, "height": 16, "layout": "nhwc"}),
    )
    with pytest.raises(ModelLoadError, match="shape"):
        ModelSession(pkg)


def test_wrong_rank_is_caught(make_package):
    manifest = anomaly_manifest()
    pkg = make_package(classifier_model(channels=2), {**manifest, "input": manifest["input"]})
    with pytest.raises(ModelLoadError, match="rank 4"):
        ModelSession(pkg)


def test_wrong_input_name(make_package):
    pkg = make_package(classifier_model(input_name="images"), classify_manifest())
    with pytest.raises(ModelLoadError, match=r"no input 'input' \(inputs: \['images'\]\)"):
        ModelSession(pkg)


def test_wrong_class_count(make_package):
    pkg = make_package(classifier_model(classes=4), classify_manifest())
    with pytest.raises(ModelLoadError, match="3 labels"):
        ModelSession(pkg)


def test_missing_output(make_package):
    pkg = make_package(classifier_model(output_name="probs"), classify_manifest())
    with pytest.raises(ModelLoadError, match=r"no output 'output' \(outputs: \['probs'\]\)"):
        ModelSession(pkg)


def test_unsupported_new_opset(make_package):
    pkg = make_package(classifier_model(opset=30), classify_manifest(opset=30))
    with pytest.raises(ModelLoadError, match="does not support opset 30") as err:
        ModelSession(pkg)
    assert "upgrade onnxruntime" in (err.value.hint or "")


def test_too_old_opset(make_package):
    model = sensor_model(opset=6)
    pkg = make_package(model, anomaly_manifest(opset=7))
    with pytest.raises(ModelLoadError, match="opset 6 is older"):
        ModelSession(pkg)


def test_manifest_opset_must_match_file(make_package):
    pkg = make_package(classifier_model(), classify_manifest(opset=13))
    with pytest.raises(ModelLoadError, match="uses opset 17, the manifest says 13"):
        ModelSession(pkg)


@pytest.mark.parametrize("payload", [b"not an onnx model at all", b"\x08\x08\x42\xff\xff"])
def test_corrupt_file(make_package, payload):
    pkg = make_package(payload, classify_manifest())
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model|cannot load"):
        ModelSession(pkg)


def test_truncated_model_is_corrupt(make_package):
    data = classifier_model().SerializeToString()
    pkg = make_package(data[: len(data) // 2], classify_manifest())
    with pytest.raises(ModelLoadError):
        ModelSession(pkg)


def test_anomaly_output_must_be_a_score(make_package):
    pkg = make_package(classifier_model(channels=2, classes=3), anomaly_manifest())
    with pytest.raises(ModelLoadError):
        ModelSession(pkg)


def test_threads_must_be_positive(make_package):
    pkg = make_package(sensor_model(), anomaly_manifest())
    with pytest.raises(ModelLoadError, match="threads"):
        ModelSession(pkg, threads=0)


def test_run_failure_is_wrapped(make_package):
    sess = ModelSession(make_package(sensor_model(), anomaly_manifest()), warmup=0)
    with pytest.raises(InferenceError):
        sess.run(np.zeros((1, 3, 8), np.float32))


def test_read_opsets_matches_onnx():
    model = classifier_model()
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    assert read_opsets(model.SerializeToString()) == {"": 17, "com.microsoft": 1}


def test_read_opsets_rejects_garbage():
    with pytest.raises(OnnxFormatError):
        read_opsets(b"\xff\xff\xff")
    with pytest.raises(OnnxFormatError):
        read_opsets(b"")
