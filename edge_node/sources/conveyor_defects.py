"""Defects drawn onto a part of the conveyor scene, in the part's own coordinates.

Each function takes the part image (float32 BGR, modified in place), the frame's
random generator, the part centre and radius, the drawing unit and whether the
defect should be subtle (hard to see).
"""

from __future__ import annotations

__all__ = ["DEFECTS", "pt", "tool_mark"]

import math
from collections.abc import Callable

import cv2
import numpy as np


def pt(x: float, y: float) -> tuple[int, int]:
    return round(x), round(y)


def _random_point(rng: np.random.Generator, mid: float, r: float) -> tuple[float, float]:
    a = float(rng.uniform(0, math.tau))
    d = float(rng.uniform(0.25, 0.85)) * r
    return mid + d * math.cos(a), mid + d * math.sin(a)


def _scratch(
    part: np.ndarray, rng: np.random.Generator, mid: float, r: float, u: float, hard: bool
) -> None:
    for _ in range(1 if hard else int(rng.integers(1, 3))):
        x, y = _random_point(rng, mid, 0.6 * r)
        a = float(rng.uniform(0, math.tau))
        length = (0.22 if hard else float(rng.uniform(0.45, 0.9))) * r
        dx, dy = length / 2 * math.cos(a), length / 2 * math.sin(a)
        val = float(rng.uniform(18, 26) if hard else rng.uniform(55, 80))
        sign = 1.0 if rng.random() < 0.6 else -1.0
        th = max(1, round(u * (0.8 if hard else rng.uniform(1.0, 1.5))))
        layer = np.zeros(part.shape[:2], np.float32)
        cv2.line(layer, pt(x - dx, y - dy), pt(x + dx, y + dy), 1.0, th, cv2.LINE_AA)
        part += (sign * val * layer)[:, :, None]


def _crack(
    part: np.ndarray, rng: np.random.Generator, mid: float, r: float, u: float, hard: bool
) -> None:
    a = float(rng.uniform(0, math.tau))
    x, y = mid + 0.92 * r * math.cos(a), mid + 0.92 * r * math.sin(a)
    heading = a + math.pi + float(rng.uniform(-0.4, 0.4))
    pts = [(x, y)]
    steps = 3 if hard else int(rng.integers(5, 8))
    for _ in range(steps):
        heading += float(rng.uniform(-0.7, 0.7))
        step = float(rng.uniform(0.07, 0.12)) * r
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        pts.append((x, y))
    poly = np.round(np.array(pts, np.float32)).astype(np.int32)
    layer = np.zeros(part.shape[:2], np.float32)
    th = max(1, round(u * (0.8 if hard else rng.uniform(1.1, 1.7))))
    cv2.polylines(layer, [poly], False, 1.0, th, cv2.LINE_AA)
    depth = 0.45 if hard else 0.8
    part *= (1.0 - depth * layer)[:, :, None]


def _dent(
    part: np.ndarray, rng: np.random.Generator, mid: float, r: float, u: float, hard: bool
) -> None:
    x, y = _random_point(rng, mid, 0.75 * r)
    rad = (0.08 if hard else float(rng.uniform(0.12, 0.2))) * r
    amp = 0.45 if hard else 1.0
    layer: np.ndarray = np.zeros(part.shape[:2], np.float32)
    a = float(rng.uniform(0, math.tau))
    ox, oy = 0.35 * rad * math.cos(a), 0.35 * rad * math.sin(a)
    cv2.circle(layer, pt(x - ox, y - oy), int(rad), -55.0, -1, cv2.LINE_AA)
    cv2.circle(layer, pt(x + ox, y + oy), int(rad * 0.8), 40.0, -1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), max(0.8, 0.25 * rad))
    part += (amp * layer)[:, :, None]


def _contamination(
    part: np.ndarray, rng: np.random.Generator, mid: float, r: float, u: float, hard: bool
) -> None:
    color = np.array(
        [(30.0, 45.0, 70.0), (20.0, 20.0, 22.0), (40.0, 90.0, 120.0)][int(rng.integers(0, 3))],
        np.float32,
    )
    alpha = np.zeros(part.shape[:2], np.float32)
    for _ in range(1 if hard else int(rng.integers(2, 6))):
        x, y = _random_point(rng, mid, r)
        rad = (0.05 if hard else float(rng.uniform(0.05, 0.12))) * r
        axes = pt(rad, rad * float(rng.uniform(0.4, 1.0)))
        cv2.ellipse(alpha, pt(x, y), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, 0.8 * u)) * (0.5 if hard else 0.85)
    part *= (1.0 - alpha)[:, :, None]
    part += alpha[:, :, None] * color[None, None, :]


def tool_mark(part: np.ndarray, rng: np.random.Generator, mid: float, r: float, u: float) -> None:
    """A harmless faint machining mark on a good part: hard negatives."""
    layer = np.zeros(part.shape[:2], np.float32)
    x, y = _random_point(rng, mid, 0.6 * r)
    cv2.circle(layer, pt(x, y), int(0.1 * r), 1.0, max(1, int(u)), cv2.LINE_AA)
    part += (12.0 * layer)[:, :, None]


DEFECTS: dict[str, Callable[..., None]] = {
    "scratch": _scratch,
    "crack": _crack,
    "dent": _dent,
    "contamination": _contamination,
}
