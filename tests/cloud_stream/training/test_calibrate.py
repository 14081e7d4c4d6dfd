"""Threshold calibration: confident decisions meet the target, with as few escalations as can be."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_stream.training.calibrate import (
    CONFIDENT_TARGET,
    FLOOR,
    calibrate_thresholds,
    confident_mask,
)
from pipeline.modelpkg import ClassifyThresholds

LABELS = ("ok", "scratch", "dent")


def _probs(top: np.ndarray, conf: np.ndarray) -> np.ndarray:
    p = np.tile(((1 - conf) / 2)[:, None], (1, 3))
    p[np.arange(len(top)), top] = conf
    return p


def test_perfect_model_escalates_nothing_but_keeps_the_floor():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    conf = rng.uniform(0.4, 1.0, 500)
    th, figs = calibrate_thresholds(_probs(y, conf), y, LABELS)
    assert all(v == FLOOR for v in th.per_class.values())
    assert figs["calib_confident_accuracy"] == 1.0
    assert figs["calib_escalation"] == pytest.approx(float((conf < FLOOR).mean()))
    th, figs = calibrate_thresholds(_probs(y, conf * 0.3 + 0.7), y, LABELS)
    assert figs["calib_escalation"] == 0.0


def test_errors_at_low_confidence_are_escalated():
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 3, n)
    conf = rng.uniform(0.6, 1.0, n)
    top = y.copy()
    wrong = conf < 0.8  # every mistake is unsure
    wrong &= rng.random(n) < 0.5
    top[wrong] = (y[wrong] + 1) % 3
    probs = _probs(top, conf)
    th, figs = calibrate_thresholds(probs, y, LABELS, max_escalation=1.0)
    mask = confident_mask(probs, LABELS, th)
    acc = float((probs.argmax(1) == y)[mask].mean())
    assert acc >= CONFIDENT_TARGET
    assert figs["calib_confident_accuracy"] == acc
    assert 0.4 < float(mask.mean()) < 0.7  # roughly all above 0.8, not much more
    assert all(0.75 < v < 0.85 for v in th.per_class.values())


def test_escalation_budget_bounds_the_thresholds():
    rng = np.random.default_rng(2)
    n = 2000
    y = rng.integers(0, 3, n)
    conf = rng.uniform(0.6, 1.0, n)
    top = np.where(rng.random(n) < 0.1, (y + 1) % 3, y)  # errors at every confidence
    probs = _probs(top, conf)
    th, figs = calibrate_thresholds(probs, y, LABELS, max_escalation=0.1)
    mask = confident_mask(probs, LABELS, th)
    assert 1.0 - mask.mean() <= 0.1
    assert figs["calib_escalation"] == pytest.approx(1.0 - mask.mean())
    assert figs["calib_confident_accuracy"] < CONFIDENT_TARGET  # the budget won
    assert figs["calib_confident_accuracy"] >= float((top == y).mean())


def test_class_never_predicted_is_never_confident():
    y = np.array([0, 0, 1, 1])
    probs = _probs(np.array([0, 0, 1, 1]), np.full(4, 0.99))
    th, _ = calibrate_thresholds(probs, y, LABELS)
    assert th.per_class["dent"] >= 0.999


def test_confident_mask_uses_per_class_margin_and_entropy():
    probs = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.5, 0.45, 0.05]])
    th = ClassifyThresholds(min_confidence=0.5, per_class={"scratch": 0.95})
    assert confident_mask(probs, LABELS, th).tolist() == [True, False, True]
    th = ClassifyThresholds(min_confidence=0.5, min_margin=0.2)
    assert confident_mask(probs, LABELS, th).tolist() == [True, True, False]
    th = ClassifyThresholds(min_confidence=0.5, max_entropy=0.5)
    assert confident_mask(probs, LABELS, th).tolist() == [True, True, False]
