"""Running the anomaly graph with onnxruntime, and the helpers train/quantize/evaluate share."""

from __future__ import annotations

__all__ = ["Scorer", "auc", "percentile_thresholds", "roc_curve", "session"]

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def session(model: Any, *, threads: int = 1) -> Any:
    """An onnxruntime CPU session for a ModelProto, bytes or a file path."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, str | bytes) else model.SerializeToString()
    if isinstance(model, Path):
        src = str(model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


class Scorer:
    """Batched scoring of normalised windows (n, C, window) with one ONNX model."""

    def __init__(self, model: Any, *, input_name: str = "input", batch: int = 256) -> None:
        self.sess = session(model)
        self.input_name = input_name
        self.batch = batch

    def __call__(self, wins: np.ndarray) -> np.ndarray:
        """Scores (or features, for a front-end-only graph) of ``wins``, batch by batch."""
        out = [
            self.sess.run(None, {self.input_name: wins[i : i + self.batch]})[0]
            for i in range(0, wins.shape[0], self.batch)
        ]
        return np.concatenate(out).astype(np.float64)


def auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative), ties counted half.

    Computed from ranks (Mann-Whitney U), so it is exact and O(n log n).
    """
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    both = np.concatenate([neg, pos])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size)
    sorted_vals = both[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[neg.size :].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (neg.size * pos.size))


def roc_curve(negatives: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (for plots)."""
    thr = np.unique(np.concatenate([negatives, positives]))[::-1]
    fpr = np.array([0.0, *[(negatives >= t).mean() for t in thr]])
    tpr = np.array([0.0, *[(positives >= t).mean() for t in thr]])
    return fpr, tpr


def percentile_thresholds(
    normal_scores: np.ndarray, *, raise_pct: float = 99.5, clear_pct: float = 95.0
) -> dict[str, object]:
    """``raise_at`` at a high percentile of normal scores, ``clear_at`` lower (hysteresis)."""
    finite = normal_scores[np.isfinite(normal_scores)]
    raise_at = float(np.percentile(finite, raise_pct))
    clear_at = float(min(np.percentile(finite, clear_pct), raise_at))
    return {
        "kind": "anomaly",
        "raise_at": raise_at,
        "clear_at": clear_at,
        "calibration": f"raise_at p{raise_pct:g}, clear_at p{clear_pct:g} of the scores of "
        f"{finite.size} normal validation windows",
    }
