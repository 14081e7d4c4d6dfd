"""The evaluation plot, drawn with OpenCV: ROC curves per fault and the score timeline."""

from __future__ import annotations

__all__ = ["draw_report"]

from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.anomaly_model import roc_curve

# BGR colours per label.
COLOURS: dict[str, tuple[int, int, int]] = {
    "normal": (120, 120, 120),
    "bearing_wear": (40, 40, 220),
    "imbalance": (200, 120, 20),
    "overheating": (20, 140, 240),
    "stuck": (160, 60, 160),
    "dropout": (60, 160, 60),
    "spike": (30, 200, 200),
    "mixed": (210, 210, 210),
}
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, s: str, xy: tuple[int, int], colour: tuple[int, int, int]) -> None:
    import cv2

    cv2.putText(img, s, xy, _FONT, 0.45, colour, 1, cv2.LINE_AA)


def _roc_panel(
    img: np.ndarray,
    origin: tuple[int, int],
    size: int,
    scores: np.ndarray,
    labels: np.ndarray,
    title: str,
) -> None:
    import cv2

    x0, y0 = origin
    cv2.rectangle(img, (x0, y0), (x0 + size, y0 + size), (0, 0, 0), 1)
    cv2.line(img, (x0, y0 + size), (x0 + size, y0), (200, 200, 200), 1)
    _text(img, title, (x0, y0 - 8), (0, 0, 0))
    _text(img, "FPR", (x0 + size // 2 - 10, y0 + size + 16), (0, 0, 0))
    _text(img, "TPR", (x0 - 40, y0 + size // 2), (0, 0, 0))
    normal = scores[(labels == "normal") & np.isfinite(scores)]
    row = 0
    for fault in ("bearing_wear", "imbalance", "overheating"):
        pos = scores[(labels == fault) & np.isfinite(scores)]
        if not pos.size or not normal.size:
            continue
        fpr, tpr = roc_curve(normal, pos)
        pts = np.stack([x0 + fpr * size, y0 + size - tpr * size], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, COLOURS[fault], 2, cv2.LINE_AA)
        _text(img, fault, (x0 + size // 2, y0 + size - 50 + 16 * row), COLOURS[fault])
        row += 1


def _timeline(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    scores: np.ndarray,
    labels: np.ndarray,
    starts: np.ndarray,
    raise_at: float,
    title: str,
) -> None:
    import cv2

    x0, y0, w, h = box
    t_max = float(starts.max()) or 1.0
    finite = scores[np.isfinite(scores)]
    lo = float(np.log10(max(finite.min(), 1e-3)))
    hi = float(np.log10(max(finite.max(), raise_at * 2)))

    def ypos(v: float) -> int:
        return int(y0 + h - (np.log10(max(v, 1e-3)) - lo) / (hi - lo + 1e-9) * h)

    for i, lab in enumerate(labels):
        if lab != "normal":
            xa = int(x0 + starts[i] / t_max * w)
            pale = tuple(int(255 - 0.3 * (255 - c)) for c in COLOURS.get(str(lab), (0, 0, 0)))
            cv2.line(img, (xa, y0), (xa, y0 + h), pale, 2)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
    yr = ypos(raise_at)
    cv2.line(img, (x0, yr), (x0 + w, yr), (0, 0, 200), 1, cv2.LINE_AA)
    _text(img, f"raise_at {raise_at:.3g}", (x0 + w - 130, yr - 4), (0, 0, 200))
    ok = np.isfinite(scores)
    pts = np.stack([x0 + starts[ok] / t_max * w, [ypos(v) for v in scores[ok]]], axis=1)
    for p in pts.astype(np.int32):
        cv2.circle(img, (int(p[0]), int(p[1])), 1, (0, 0, 0), -1)
    _text(img, title, (x0, y0 - 8), (0, 0, 0))
    _text(img, "time in test.csv (s); score on a log axis", (x0, y0 + h + 16), (0, 0, 0))
    legend = [k for k in COLOURS if k in set(labels.tolist()) and k not in ("normal", "mixed")]
    for j, k in enumerate(legend):
        _text(img, k, (x0 + 420 + 100 * j, y0 - 8), COLOURS[k])


def draw_report(
    path: Path,
    scores: list[np.ndarray],
    labels: np.ndarray,
    starts: np.ndarray,
    results: list[dict[str, Any]],
) -> None:
    """Write a PNG: one ROC panel per package (top) and the last package's scores over time."""
    import cv2

    width = 1100
    img = np.full((720, width, 3), 255, np.uint8)
    size = 260
    for i, (s, r) in enumerate(zip(scores, results, strict=True)):
        title = (
            f"ROC {r['name']} ({r['precision']}), AUC {r['metrics'].get('auc', float('nan')):.4f}"
        )
        _roc_panel(img, (60 + i * (size + 120), 40), size, s, labels, title)
    raise_at = float(results[-1]["thresholds"]["raise_at"])
    _timeline(
        img,
        (60, 380, width - 100, 290),
        scores[-1],
        labels,
        starts,
        raise_at,
        f"score per window, {results[-1]['name']}; shaded: injected faults",
    )
    cv2.imwrite(str(path), img)
