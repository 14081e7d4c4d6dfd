"""The evaluation plot, drawn with OpenCV (matplotlib is not a dependency)."""

from __future__ import annotations

__all__ = ["draw_plot"]

import math
from pathlib import Path
from typing import Any

import numpy as np

_W, _H = 420, 330
_COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]


def _panel(
    title: str, names: list[str], values: list[float], fmt: str, *, vmax: float | None = None
) -> np.ndarray:
    """One bar chart: title, bars with value labels, names below."""
    import cv2

    img = np.full((_H, _W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (12, 24), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    top, bottom, left, right = 50, _H - 70, 20, _W - 20
    cv2.line(img, (left, bottom), (right, bottom), (0, 0, 0), 1)
    finite = [v for v in values if not math.isnan(v)]
    high = vmax if vmax is not None else max(finite or [1.0]) * 1.15 or 1.0
    slot = (right - left) / max(1, len(values))
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        x0 = int(left + i * slot + slot * 0.15)
        x1 = int(left + (i + 1) * slot - slot * 0.15)
        v = 0.0 if math.isnan(value) else value
        y = int(bottom - (bottom - top) * min(1.0, v / high))
        cv2.rectangle(img, (x0, y), (x1, bottom), _COLORS[i % len(_COLORS)], -1)
        cv2.putText(
            img, fmt.format(value), (x0, max(top - 6, y - 6)), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        for j, part in enumerate(_wrap(name, max(6, int(slot / 7)))):
            cv2.putText(
                img, part, (x0, bottom + 16 + 14 * j), font, 0.36, (40, 40, 40), 1, cv2.LINE_AA
            )
    return img


def _wrap(text: str, width: int) -> list[str]:
    words = text.replace("-", "- ").replace("_", "_ ").split()
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + len(w) <= width:
            lines[-1] += w
        else:
            lines.append(w)
    return lines[:3]


def draw_plot(report: dict[str, Any], out: Path) -> Path:
    """Accuracy and latency per package; escalation and cascade accuracy per condition."""
    import cv2

    rows = report["packages"]
    names = [r["name"] for r in rows]
    panels = [
        _panel(
            "accuracy, test split (%)",
            names,
            [100 * r["accuracy"] for r in rows],
            "{:.2f}",
            vmax=100.0,
        ),
        _panel("latency, 1 thread (ms)", names, [r["latency_ms"] for r in rows], "{:.3f}"),
    ]
    edge = report["edge"]
    conds = ["none", *report["drift"]]
    esc = [next(r["escalation_rate"] for r in rows if r["name"] == edge)] + [
        e["packages"][edge]["escalation_rate"] for e in report["drift"].values()
    ]
    panels.append(
        _panel(f"{edge}: escalated frames (%)", conds, [100 * v for v in esc], "{:.1f}", vmax=100.0)
    )
    if "cascade" in report:
        acc = [report["cascade"]["accuracy"]] + [
            e.get("cascade_accuracy", float("nan")) for e in report["drift"].values()
        ]
        panels.append(
            _panel("cascade accuracy (%)", conds, [100 * v for v in acc], "{:.1f}", vmax=100.0)
        )
    if len(panels) % 2:
        panels.append(np.full((_H, _W, 3), 255, np.uint8))
    grid = np.vstack([np.hstack(panels[i : i + 2]) for i in range(0, len(panels), 2)])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid):
        raise OSError(f"cannot write {out}")
    return out
