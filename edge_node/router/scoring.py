"""Confident or uncertain: the classification thresholds of a model, with config overrides."""

from __future__ import annotations

__all__ = ["UncertainReason", "effective_thresholds", "uncertain_reason"]

from typing import Literal

from edge_node.router.config import RouterConfig
from edge_node.runtime.results import Classification
from pipeline.modelpkg import ClassifyThresholds

UncertainReason = Literal["input_drift", "confidence", "margin", "entropy"]


def effective_thresholds(manifest: ClassifyThresholds, config: RouterConfig) -> ClassifyThresholds:
    """The manifest's thresholds with the config's overrides applied.

    An overriding ``min_confidence`` applies to every class: the manifest's
    ``per_class`` thresholds are dropped with it.
    """
    update: dict[str, object] = {}
    if config.min_confidence is not None:
        update.update(min_confidence=config.min_confidence, per_class={})
    if config.min_margin is not None:
        update["min_margin"] = config.min_margin
    if config.max_entropy is not None:
        update["max_entropy"] = config.max_entropy
    return manifest.model_copy(update=update) if update else manifest


def uncertain_reason(cls: Classification, thresholds: ClassifyThresholds) -> UncertainReason | None:
    """Why a classification is not confident, or None when it is.

    Confident means: the top-1 probability reaches its class threshold (``per_class``
    or ``min_confidence``), the margin reaches ``min_margin`` and the entropy is at
    most ``max_entropy`` (when set). Before all of these: a frame whose statistics
    lie outside the training images' range (``input_drift``) is uncertain however
    confident the model is, because a model is often confidently wrong on inputs
    it has never seen (a dimmed lamp, a new surface finish). The first failing
    test is the reason.
    """
    if cls.input_drift is not None:
        return "input_drift"
    needed = thresholds.per_class.get(cls.label, thresholds.min_confidence)
    if cls.score < needed:
        return "confidence"
    if cls.margin < thresholds.min_margin:
        return "margin"
    if thresholds.max_entropy is not None and cls.entropy > thresholds.max_entropy:
        return "entropy"
    return None
