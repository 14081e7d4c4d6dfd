"""Procedural conveyor-belt scene: one machined part per frame, drawn with OpenCV.

Every frame is a pure function of ``(seed, index, condition)``, so a seed replays
the same stream. The scene is drawn at 160x120, the detail the simulated optics
resolve, and resized to the requested frame size with a little per-pixel sensor
noise on top: a 640x480 frame reduced to the model's 96x96 input then matches the
160x120 training frames (an earlier version drew every size natively, and a model
trained at 160x120 reached only 58 % on 640x480 frames). Drawing small also keeps
a 640x480 frame at about 2 ms.

The part sits near the centre of the frame (a photo-eye triggers the camera as
the part passes), inside the central square that the models crop.
"""

from __future__ import annotations

__all__ = ["CLASSES", "CONDITIONS", "GENERATOR_VERSION", "ConveyorScene", "Rendered"]

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_node.sources.conveyor_defects import DEFECTS, pt, tool_mark

GENERATOR_VERSION = "conveyor-sim/1"
#: Drawing width; frames of other sizes are resized from it.
RENDER_WIDTH = 160
CLASSES: tuple[str, ...] = (
    "ok",
    "scratch",
    "crack",
    "dent",
    "missing_feature",
    "contamination",
)
CONDITIONS: tuple[str, ...] = ("dim_light", "color_cast", "new_finish", "camera_shift")

_METAL = np.array([178.0, 174.0, 168.0], np.float32)  # BGR, slightly cool steel
_FINISHES = (
    np.array([70.0, 150.0, 200.0], np.float32),  # gold anodised
    np.array([150.0, 95.0, 45.0], np.float32),  # blue anodised
    np.array([62.0, 60.0, 58.0], np.float32),  # black oxide
)
_CASTS = (
    np.array([0.62, 0.95, 1.25], np.float32),  # warm sodium lamp
    np.array([0.85, 1.2, 0.7], np.float32),  # green fluorescent
    np.array([1.3, 1.0, 0.72], np.float32),  # cold blue LED
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered frame and what is in it."""

    image: np.ndarray
    label: str
    hard: bool


class ConveyorScene:
    """Renders frames of a conveyor belt with parts, defects and drift conditions.

    Args:
        width: Frame width in pixels; the height is 3/4 of it (``frame_width``,
            ``frame_height``; ``width``/``height`` are the drawing size).
        seed: Seeds the textures and every frame.
        ok_fraction: Share of parts without a defect.
        hard_fraction: Share of parts drawn with a subtle (hard to see) defect or,
            for good parts, a harmless mark.
    """

    def __init__(
        self, width: int, seed: int, *, ok_fraction: float = 0.5, hard_fraction: float = 0.04
    ) -> None:
        self.frame_width = int(width)
        self.frame_height = self.frame_width * 3 // 4
        self.width, self.height = RENDER_WIDTH, RENDER_WIDTH * 3 // 4
        self.seed = int(seed)
        self.ok_fraction = ok_fraction
        self.hard_fraction = hard_fraction
        self.unit = self.width / 160.0
        self.canvas = round(0.62 * self.height) | 1
        rng = np.random.default_rng([self.seed, 0x5EED])
        self._belt = self._make_belt(rng)
        self._brushed = self._make_texture(rng, brushed=True)
        self._blasted = self._make_texture(rng, brushed=False)
        self._pixel_noise: np.ndarray | None = None

    # ----------------------------------------------------------------- textures
    def _make_belt(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        period = 2 * w
        low: np.ndarray = rng.normal(0.0, 1.0, (max(4, h // 8), max(4, period // 8)))
        low = cv2.resize(low.astype(np.float32), (period, h), interpolation=cv2.INTER_CUBIC)
        fine: np.ndarray = rng.normal(0.0, 1.0, (h, period)).astype(np.float32)
        fine = cv2.blur(fine, (max(1, int(3 * self.unit)), 1))
        belt = 58.0 + 6.0 * low + 5.0 * fine
        for x in rng.integers(0, period, 6):  # belt seams
            belt[:, int(x) : int(x) + max(1, int(self.unit))] -= 14.0
        rail = int(0.07 * h)
        belt[:rail] = 105.0 + 4.0 * fine[:rail]
        belt[h - rail :] = 105.0 + 4.0 * fine[h - rail :]
        gray = np.clip(belt, 0, 255).astype(np.uint8)
        return cv2.merge([gray, gray, gray])

    def _make_texture(self, rng: np.random.Generator, *, brushed: bool) -> np.ndarray:
        size = 2 * self.canvas
        noise: np.ndarray = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
        if brushed:
            k = max(3, int(12 * self.unit)) | 1
            noise = cv2.blur(noise, (k, 1)) * math.sqrt(k)
            return 1.0 + 0.035 * noise / max(1e-6, float(noise.std()))
        noise = cv2.GaussianBlur(noise, (0, 0), max(0.5, 0.6 * self.unit))
        return 1.0 + 0.06 * noise / max(1e-6, float(noise.std()))

    # -------------------------------------------------------------------- frame
    def label_of(self, index: int) -> str:
        """The class of frame ``index`` (cheap: no drawing)."""
        rng = np.random.default_rng([self.seed, int(index)])
        return self._pick_label(rng)

    def _pick_label(self, rng: np.random.Generator) -> str:
        r = float(rng.random())
        if r < self.ok_fraction:
            return "ok"
        step = (1.0 - self.ok_fraction) / (len(CLASSES) - 1)
        return CLASSES[1 + min(len(CLASSES) - 2, int((r - self.ok_fraction) / step))]

    def render(self, index: int, condition: str | None = None) -> Rendered:
        """Draw frame ``index`` under ``condition`` (None: the conditions trained on)."""
        if condition is not None and condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r}; known: {CONDITIONS}")
        rng = np.random.default_rng([self.seed, int(index)])
        label = self._pick_label(rng)
        hard = bool(rng.random() < self.hard_fraction)
        drift = np.random.default_rng([self.seed, int(index), 7])
        part, alpha = self._draw_part(rng, drift, label, hard, condition)
        frame = self._compose(rng, drift, int(index), part, alpha, condition)
        frame = self._camera(rng, drift, frame, condition)
        if self.frame_width != self.width:
            frame = self._resize(rng, frame)
        return Rendered(image=frame, label=label, hard=hard)

    def _resize(self, rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
        size = (self.frame_width, self.frame_height)
        if self.frame_width < self.width:
            small: np.ndarray = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            return small
        big: np.ndarray = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        if self._pixel_noise is None:  # fine sensor noise, drawn once, shifted per frame
            tile = np.random.default_rng([self.seed, 0x401]).normal(
                0.0, 2.0, (self.frame_height + 32, self.frame_width + 32, 3)
            )
            self._pixel_noise = tile.astype(np.float32)
        oy, ox = (int(v) for v in rng.integers(0, 32, 2))
        noise = self._pixel_noise[oy : oy + self.frame_height, ox : ox + self.frame_width]
        out: np.ndarray = cv2.add(big, np.ascontiguousarray(noise), dtype=cv2.CV_8U)
        return out

    # --------------------------------------------------------------------- part
    def _draw_part(
        self,
        rng: np.random.Generator,
        drift: np.random.Generator,
        label: str,
        hard: bool,
        condition: str | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        c = self.canvas
        u = self.unit
        mid = c / 2.0
        radius = 0.4 * c
        mask = np.zeros((c, c), np.uint8)
        ink = np.zeros((c, c), np.uint8)  # where the logo goes
        disc = bool(rng.random() < 0.5)
        holes: list[tuple[float, float, float]] = []
        if disc:
            cv2.circle(mask, pt(mid, mid), int(radius), 255, -1, cv2.LINE_AA)
            n = int(rng.integers(4, 7))
            phase = float(rng.random()) * math.tau
            for k in range(n):
                a = phase + k * math.tau / n
                holes.append(
                    (mid + 0.7 * radius * math.cos(a), mid + 0.7 * radius * math.sin(a), 0.1)
                )
            holes.append((mid, mid, 0.24))
            la = phase + math.pi / n
            logo_at = (mid + 0.46 * radius * math.cos(la), mid + 0.46 * radius * math.sin(la))
        else:
            hw, hh = radius, 0.62 * radius
            cv2.rectangle(mask, pt(mid - hw, mid - hh), pt(mid + hw, mid + hh), 255, -1)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    holes.append((mid + sx * 0.78 * hw, mid + sy * 0.7 * hh, 0.1))
            holes.append((mid - 0.3 * hw, mid, 0.16))
            logo_at = (mid + 0.32 * hw, mid)
        missing_hole = missing_logo = False
        if label == "missing_feature":
            # A missing hole on a flange (4-6 holes) is only obvious when spaced evenly:
            # keep it for the hard cases; a bracket missing a corner hole is clear.
            missing_hole = hard or (not disc and bool(rng.random() < 0.4))
            missing_logo = not missing_hole
        if missing_hole:
            holes.pop(int(rng.integers(0, len(holes) - 1)))
        for hx, hy, hr in holes:
            cv2.circle(mask, pt(hx, hy), max(1, int(hr * radius)), 0, -1, cv2.LINE_AA)
        if not missing_logo:
            s = 0.15 * radius
            tri = np.array(
                [
                    [logo_at[0] - s, logo_at[1] + s],
                    [logo_at[0] + s, logo_at[1] + s],
                    [logo_at[0], logo_at[1] - s],
                ],
                np.float32,
            )
            cv2.fillPoly(ink, [np.round(tri).astype(np.int32)], 255, cv2.LINE_AA)

        finish = condition == "new_finish"
        color = _FINISHES[int(drift.integers(0, len(_FINISHES)))] if finish else _METAL
        color = color * np.float32(rng.uniform(0.88, 1.08))
        tex = self._blasted if finish else self._brushed
        ox, oy = (int(v) for v in rng.integers(0, tex.shape[0] - c, 2))
        shade = tex[oy : oy + c, ox : ox + c]
        part = shade[:, :, None] * color[None, None, :]
        edge = cv2.Canny(mask, 50, 150)
        edge = cv2.dilate(edge, np.ones((2, 2), np.uint8)) if u >= 2 else edge
        part += (edge.astype(np.float32) / 255.0 * 30.0)[:, :, None]
        part -= (ink.astype(np.float32) / 255.0 * 0.55)[:, :, None] * part

        if label not in {"ok", "missing_feature"}:
            DEFECTS[label](part, rng, mid, radius, u, hard)
        elif label == "ok" and hard:
            tool_mark(part, rng, mid, radius, u)
        return part, mask

    # ------------------------------------------------------------------ compose
    def _compose(
        self,
        rng: np.random.Generator,
        drift: np.random.Generator,
        index: int,
        part: np.ndarray,
        mask: np.ndarray,
        condition: str | None,
    ) -> np.ndarray:
        h, w, c = self.height, self.width, self.canvas
        off = (index * int(37 * self.unit)) % (self._belt.shape[1] - w)
        belt = np.ascontiguousarray(self._belt[:, off : off + w])
        angle = float(rng.uniform(0, 360))
        scale = float(rng.uniform(0.9, 1.1))
        cx = w / 2 + float(rng.uniform(-0.05, 0.05)) * h
        cy = h / 2 + float(rng.uniform(-0.05, 0.05)) * h
        m = cv2.getRotationMatrix2D((c / 2, c / 2), angle, scale)
        m[:, 2] += np.array([cx - c / 2, cy - c / 2])
        part8 = np.clip(part, 0, 255).astype(np.uint8)
        warped = cv2.warpAffine(part8, m, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)
        sh = max(1, int(3 * self.unit))
        shadow = np.zeros_like(alpha)
        shadow[sh:, sh:] = alpha[:-sh, :-sh]
        k = max(3, int(4 * self.unit) | 1)
        a = alpha.astype(np.float32) * np.float32(1.0 / 255.0)
        shade = cv2.blur(shadow, (k, k)).astype(np.float32) * np.float32(0.45 / 255.0)
        frame = cv2.blendLinear(warped, belt, a, 1.0 - a)
        # Lighting: a gentle gradient in a random direction plus vignetting.
        theta = float(rng.uniform(0, math.tau))
        amp = float(rng.uniform(0.0, 0.18))
        gy, gx = np.mgrid[0:6, 0:8].astype(np.float32)
        gx, gy = gx / 7 - 0.5, gy / 5 - 0.5
        gain = 1.0 + amp * (gx * math.cos(theta) + gy * math.sin(theta))
        gain -= 0.25 * (gx**2 + gy**2)
        gain *= float(rng.uniform(0.88, 1.12))
        if condition == "dim_light":
            gain *= float(drift.uniform(0.28, 0.4))
        light = cv2.resize(gain.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        light *= 1.0 - shade * (1.0 - a)
        out: np.ndarray = cv2.multiply(
            frame, cv2.cvtColor(light, cv2.COLOR_GRAY2BGR), dtype=cv2.CV_8U
        )
        if condition == "color_cast":
            cast = _CASTS[int(drift.integers(0, len(_CASTS)))]
            out = np.clip(out * cast[None, None, :], 0, 255).astype(np.uint8)
        return out

    # ------------------------------------------------------------------- camera
    def _camera(
        self,
        rng: np.random.Generator,
        drift: np.random.Generator,
        frame: np.ndarray,
        condition: str | None,
    ) -> np.ndarray:
        h, w = self.height, self.width
        if condition == "camera_shift":
            m = cv2.getRotationMatrix2D(
                (w / 2, h / 2), float(drift.uniform(-10, 10)), float(drift.uniform(1.25, 1.45))
            )
            m[:, 2] += np.array([drift.uniform(-0.1, 0.1) * w, drift.uniform(-0.1, 0.1) * h])
            frame = cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.35:
            sigma = float(rng.uniform(0.3, 0.9)) * self.unit
            frame = cv2.GaussianBlur(frame, (0, 0), sigma)
        # Sensor grain on a fixed 160x120 grid: the same look at every frame width.
        sigma_n = float(rng.uniform(1.5, 4.0)) * (2.5 if condition == "dim_light" else 1.0)
        grain: np.ndarray = rng.normal(0.0, sigma_n, (120, 160, 3)).astype(np.float32)
        if (w, h) != (160, 120):
            grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
        out: np.ndarray = cv2.add(frame, grain, dtype=cv2.CV_8U)
        return out
