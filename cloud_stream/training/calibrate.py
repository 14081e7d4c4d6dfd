"""Running ONNX classifiers with onnxruntime, and calibrating their confidence thresholds."""

from __future__ import annotations

__all__ = [
    "CALIBRATION_TARGET",
    "CONFIDENT_TARGET",
    "FLOOR",
    "MAX_ESCALATION",
    "calibrate_thresholds",
    "confident_mask",
    "latency_ms",
    "predict",
    "session",
]

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.modelpkg import ClassifyThresholds

logger = logging.getLogger(__name__)

#: Confident decisions must be at least this accurate.
CONFIDENT_TARGET = 0.995
#: What calibration aims for on the val split: the target plus a margin for new data.
CALIBRATION_TARGET = 0.997
#: At most this share of in-distribution frames may be escalated to the cloud.
MAX_ESCALATION = 0.10
#: Never act on a top-1 probability below this, whatever the calibration data says.
FLOOR = 0.6


def session(onnx: Path, *, threads: int = 1) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])


def predict(sess: Any, x: np.ndarray, *, batch: int = 64) -> np.ndarray:
    """Output probabilities (N, classes) for model input ``x`` (N, ...)."""
    name = sess.get_inputs()[0].name
    outs = [
        np.asarray(sess.run(None, {name: x[i : i + batch]})[0], np.float64)
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def latency_ms(sess: Any, sample: np.ndarray, *, runs: int = 200, warmup: int = 20) -> float:
    """Median single-frame latency in milliseconds (``sample`` has batch 1)."""
    name = sess.get_inputs()[0].name
    for _ in range(warmup):
        sess.run(None, {name: sample})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: sample})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000.0)


def confident_mask(
    probs: np.ndarray, labels: tuple[str, ...], thresholds: ClassifyThresholds
) -> np.ndarray:
    """Which rows the edge router would decide locally (see :class:`ClassifyThresholds`)."""
    top = probs.argmax(1)
    conf = probs.max(1)
    need = np.array([thresholds.per_class.get(lab, thresholds.min_confidence) for lab in labels])[
        top
    ]
    ok = conf >= need
    if thresholds.min_margin > 0:
        part = np.sort(probs, axis=1)
        ok &= (part[:, -1] - part[:, -2]) >= thresholds.min_margin
    if thresholds.max_entropy is not None:
        ent = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(1)
        ok &= ent <= thresholds.max_entropy
    return np.asarray(ok)


def _greedy_cuts(
    conf: np.ndarray,
    correct: np.ndarray,
    top: np.ndarray,
    classes: int,
    floor: float,
    target: float,
    max_escalation: float,
) -> list[tuple[np.ndarray, int]]:
    """Per class: its decisions by rising confidence, and how many of them to escalate.

    Starts from the ``floor`` and, while the confident decisions of all classes
    together are below ``target``, escalates the next error of the class where that
    costs the fewest correct decisions, as long as at most ``max_escalation`` of all
    decisions end up escalated.
    """
    ordered: list[np.ndarray] = []
    cuts: list[int] = []
    for k in range(classes):
        sel = np.flatnonzero(top == k)
        order = sel[np.argsort(conf[sel], kind="stable")]
        ordered.append(order)
        cuts.append(int(np.searchsorted(conf[order], floor)))
    total = len(conf)
    budget = int(max_escalation * total)
    kept = sum(len(o) - c for o, c in zip(ordered, cuts, strict=True))
    errors = sum(int((~correct[o[c:]]).sum()) for o, c in zip(ordered, cuts, strict=True))
    while kept and errors > (1.0 - target) * kept:
        best: tuple[int, int] | None = None
        for k, order in enumerate(ordered):
            rest = ~correct[order[cuts[k] :]]
            if rest.any():
                j = int(np.argmax(rest))  # correct decisions escalated with this error
                fits = total - kept + j + 1 <= budget
                if fits and (best is None or j < best[1]):
                    best = (k, j)
        if best is None:  # the escalation budget is spent
            break
        k, j = best
        cuts[k] += j + 1
        kept -= j + 1
        errors -= 1
    return list(zip(ordered, cuts, strict=True))


def calibrate_thresholds(
    probs: np.ndarray,
    y: np.ndarray,
    labels: tuple[str, ...],
    *,
    target: float = CALIBRATION_TARGET,
    floor: float = FLOOR,
    max_escalation: float = MAX_ESCALATION,
) -> tuple[ClassifyThresholds, dict[str, float]]:
    """Per-class top-1 thresholds: confident decisions ``target``-accurate, fewest escalations.

    Greedy on the calibration data (the val split): start every class at ``floor``;
    while the confident decisions of all classes together are less than ``target``
    accurate, raise the threshold of the class whose next error costs the fewest
    correct decisions to escalate. A threshold sits midway between the last
    escalated and the first kept confidence. ``target`` is a little above the 99.5 %
    goal, as a margin for new data. The greedy stops when ``max_escalation`` of the
    frames would be escalated: the cloud's capacity is bounded too, and a model that
    needs more to reach ``target`` gets the most accurate thresholds within the budget
    (its ``calib_confident_accuracy`` then falls short of ``target``; see the report).

    Returns:
        The thresholds and the calibration figures (escalation rate, confident accuracy).
    """
    top = probs.argmax(1)
    conf = probs.max(1)
    correct = top == y
    per_class: dict[str, float] = {}
    for k, (order, cut) in enumerate(
        _greedy_cuts(conf, correct, top, len(labels), floor, target, max_escalation)
    ):
        c = conf[order]
        if len(c) == 0:
            t = 1.0  # never predicted on the calibration data: no evidence, escalate
        elif cut <= int(np.searchsorted(c, floor)):
            t = floor  # nothing escalated beyond the floor
        elif cut >= len(c):
            t = 1.0
        else:
            t = float(c[cut - 1] + c[cut]) / 2.0
        per_class[labels[k]] = round(min(1.0, max(floor, t)), 6)
    need = np.array([per_class[lab] for lab in labels])[top]
    mask = conf >= need
    acc = float(correct[mask].mean()) if mask.any() else 1.0
    esc = float(1.0 - mask.mean())
    thresholds = ClassifyThresholds(min_confidence=max(per_class.values()), per_class=per_class)
    logger.info("thresholds: escalation %.3f, confident accuracy %.4f", esc, acc)
    return thresholds, {"calib_escalation": esc, "calib_confident_accuracy": acc}
