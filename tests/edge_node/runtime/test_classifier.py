"""Image classifier: probabilities, softmax of logits, top-1, margin, entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_node.runtime import Classification, FrameError, ImageClassifier, ModelLoadError, softmax
from tests.edge_node.runtime.conftest import (
    anomaly_manifest,
    classifier_model,
    classify_manifest,
    sensor_model,
)


def bgr(r: int, g: int, b: int) -> np.ndarray:
    img = np.empty((48, 64, 3), np.uint8)
    img[:] = (b, g, r)
    return img


def expected(r: int, g: int, b: int) -> np.ndarray:
    # the fixture's logits are 10 * mean of each RGB channel scaled to [0, 1]
    return softmax(10 * np.array([r, g, b]) / 255.0)


@pytest.mark.parametrize("kind", ["probs", "logits"])
def test_classify_probabilities(make_package, kind):
    model = classifier_model(softmax=kind == "probs")
    clf = ImageClassifier(make_package(model, classify_manifest(output_kind=kind)))
    result = clf.classify(bgr(255, 0, 0))
    want = expected(255, 0, 0)
    np.testing.assert_allclose(result.probs, want, rtol=1e-5)
    assert result.label == "ok"
    assert result.index == 0
    assert result.score == pytest.approx(want[0])
    assert result.margin == pytest.approx(want[0] - want[1])
    assert result.entropy == pytest.approx(-sum(p * math.log(p) for p in want))
    assert result.prob_dict().keys() == {"ok", "crack", "scratch"}
    assert result.latency_ms > 0
    assert clf.last_inference_ms > 0
    assert clf.last_preprocess_ms > 0


def test_colour_order_reaches_the_model(make_package):
    clf = ImageClassifier(make_package(classifier_model(), classify_manifest()))
    assert clf.classify(bgr(0, 0, 255)).label == "scratch"  # blue is the third RGB channel
    assert clf.classify(bgr(0, 255, 0)).label == "crack"


def test_unreadable_frame_raises_frame_error(make_package):
    clf = ImageClassifier(make_package(classifier_model(), classify_manifest()), warmup=0)
    with pytest.raises(FrameError):
        clf.classify(None)


def test_rejects_an_anomaly_package(make_package):
    with pytest.raises(ModelLoadError, match="not an image classifier"):
        ImageClassifier(make_package(sensor_model(), anomaly_manifest()))


def test_nhwc_model(make_package):
    manifest = classify_manifest(
        input={"kind": "image", "width": 16, "height": 16, "layout": "nhwc"}
    )
    clf = ImageClassifier(make_package(classifier_model(layout="nhwc"), manifest))
    assert clf.classify(bgr(0, 255, 0)).label == "crack"


def test_from_probs_edge_cases():
    one = Classification.from_probs(("only",), np.array([1.0]))
    assert (one.score, one.margin, one.entropy) == (1.0, 1.0, 0.0)
    uniform = Classification.from_probs(("a", "b", "c", "d"), np.full(4, 0.25))
    assert uniform.margin == 0.0
    assert uniform.entropy == pytest.approx(math.log(4))


def test_softmax_is_stable():
    p = softmax(np.array([1000.0, 0.0, -1000.0]))
    assert np.isfinite(p).all()
    assert p[0] == pytest.approx(1.0)


def _stats(contrast: tuple[float, float] = (0.0, 1.0)) -> dict[str, object]:
    return {"channel_mean": [[0.2, 0.8]] * 3, "contrast": list(contrast)}


@pytest.mark.parametrize(
    ("rgb", "drift"),
    [
        ((128, 128, 128), None),
        ((10, 10, 10), "brightness.0"),  # a dimmed lamp
        ((128, 128, 250), "brightness.2"),  # a blue cast
    ],
)
def test_input_outside_the_training_range_is_flagged(make_package, rgb, drift):
    clf = ImageClassifier(make_package(classifier_model(), classify_manifest(input_stats=_stats())))
    assert clf.classify(bgr(*rgb)).input_drift == drift


def test_contrast_outside_the_training_range_is_flagged(make_package):
    manifest = classify_manifest(input_stats=_stats(contrast=(0.1, 1.0)))
    clf = ImageClassifier(make_package(classifier_model(), manifest))
    assert clf.classify(bgr(128, 128, 128)).input_drift == "contrast"  # a flat grey frame


def test_no_input_stats_no_drift_check(make_package):
    clf = ImageClassifier(make_package(classifier_model(), classify_manifest()))
    assert clf.classify(bgr(0, 0, 0)).input_drift is None
