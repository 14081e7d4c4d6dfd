"""Confident vs uncertain from the manifest thresholds and the config overrides."""

from __future__ import annotations

import numpy as np
import pytest

from edge_node.router import RouterConfig, effective_thresholds, uncertain_reason
from edge_node.runtime import Classification
from pipeline.modelpkg import ClassifyThresholds

LABELS = ("ok", "crack", "scratch")


def cls(*probs: float) -> Classification:
    return Classification.from_probs(LABELS, np.array(probs))


@pytest.mark.parametrize(
    ("probs", "thresholds", "reason"),
    [
        ((0.95, 0.03, 0.02), {}, None),
        ((0.85, 0.10, 0.05), {}, "confidence"),
        ((0.90, 0.05, 0.05), {}, None),  # exactly at the threshold is confident
        ((0.85, 0.10, 0.05), {"per_class": {"ok": 0.8}}, None),
        ((0.05, 0.93, 0.02), {"per_class": {"crack": 0.95}}, "confidence"),
        ((0.55, 0.45, 0.0), {"min_confidence": 0.5, "min_margin": 0.2}, "margin"),
        ((0.91, 0.045, 0.045), {"max_entropy": 0.1}, "entropy"),
        ((0.99, 0.005, 0.005), {"max_entropy": 0.1}, None),
    ],
)
def test_uncertain_reason(probs, thresholds, reason):
    assert uncertain_reason(cls(*probs), ClassifyThresholds(**thresholds)) == reason


def test_overrides_replace_manifest_values():
    manifest = ClassifyThresholds(min_confidence=0.9, per_class={"ok": 0.5}, min_margin=0.1)
    eff = effective_thresholds(
        manifest, RouterConfig(min_confidence=0.6, min_margin=0.3, max_entropy=0.5)
    )
    assert (eff.min_confidence, eff.per_class, eff.min_margin, eff.max_entropy) == (
        0.6,
        {},
        0.3,
        0.5,
    )
    assert uncertain_reason(cls(0.62, 0.37, 0.01), eff) == "margin"
    assert uncertain_reason(cls(0.7, 0.2, 0.1), eff) == "entropy"


def test_no_overrides_keep_the_manifest():
    manifest = ClassifyThresholds(per_class={"ok": 0.5})
    assert effective_thresholds(manifest, RouterConfig()) is manifest


def test_input_drift_is_uncertain_however_confident():
    sure = Classification.from_probs(("ok", "crack"), np.array([0.999, 0.001]))
    drifted = Classification.from_probs(
        ("ok", "crack"), np.array([0.999, 0.001]), input_drift="brightness.0"
    )
    thresholds = ClassifyThresholds(min_confidence=0.9)
    assert uncertain_reason(sure, thresholds) is None
    assert uncertain_reason(drifted, thresholds) == "input_drift"
