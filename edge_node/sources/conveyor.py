"""``sim.conveyor``: a simulated camera over a conveyor belt carrying machined parts.

Parts (flanges and brackets with holes and a logo) pass under the camera with
varying position, rotation, scale, lighting, blur and sensor noise. Most are
good (``ok``); the rest carry one defect: ``scratch``, ``crack``, ``dent``,
``missing_feature`` (logo or a hole missing) or ``contamination``. A few per
cent are subtle on purpose, so that the edge model is sometimes unsure.

Drift conditions the shipped model never saw (``dim_light``, ``color_cast``,
``new_finish``, ``camera_shift``) switch on by a schedule::

    sources:
      - type: sim.conveyor
        name: cam0
        fps: 10
        drift:
          - {condition: dim_light, after_frames: 500}
          - {condition: none, after_frames: 800}

The stream is deterministic for a seed (frame *i* is a pure function of seed, *i*
and the condition in effect). :func:`export_dataset` writes the same frames as an
image-folder dataset for training.
"""

from __future__ import annotations

__all__ = [
    "CLASSES",
    "CONDITIONS",
    "ConveyorConfig",
    "ConveyorSource",
    "DriftStep",
    "export_dataset",
]

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_node.sources.base import Frame, Source, SourceConfig, SourceError, register
from edge_node.sources.conveyor_scene import (
    CLASSES,
    CONDITIONS,
    GENERATOR_VERSION,
    ConveyorScene,
)
from pipeline.config.base import Section

logger = logging.getLogger(__name__)

DriftName = Literal["none", "dim_light", "color_cast", "new_finish", "camera_shift"]
SPLITS: tuple[tuple[str, int], ...] = (("train", 14), ("val", 3), ("test", 3))  # out of 20


class DriftStep(Section):
    """From a point in the stream on, render frames under ``condition``."""

    condition: DriftName = Field(description="Drift condition; 'none' returns to normal")
    after_frames: int | None = Field(
        default=None, ge=0, description="Start at this frame index (counted from 0)"
    )
    after_s: float | None = Field(
        default=None, ge=0, description="Start this many seconds after the source opened"
    )

    @model_validator(mode="after")
    def _one_trigger(self) -> DriftStep:
        if (self.after_frames is None) == (self.after_s is None):
            raise ValueError("give exactly one of after_frames or after_s")
        return self


class ConveyorConfig(SourceConfig):
    """A simulated conveyor-belt camera."""

    type: Literal["sim.conveyor"] = Field(default="sim.conveyor", description="Source plugin key")
    width: int = Field(
        default=640, ge=64, le=1920, multiple_of=4, description="Frame width; height is 3/4"
    )
    fps: float = Field(default=0.0, ge=0, le=1000, description="Frames per second; 0: no pacing")
    count: int | None = Field(
        default=None, ge=0, description="Stop after this many frames; none: endless"
    )
    seed: int = Field(default=0, ge=0, description="Random seed; same seed, same stream")
    ok_fraction: float = Field(default=0.5, ge=0, le=1, description="Share of good parts")
    hard_fraction: float = Field(
        default=0.04, ge=0, le=1, description="Share of parts with a subtle defect or mark"
    )
    drift: tuple[DriftStep, ...] = Field(
        default=(), description="Drift schedule; the last step reached is in effect"
    )


@register(ConveyorConfig)
class ConveyorSource(Source):
    """Yields :class:`Frame` objects with ``truth`` (class) and ``condition`` (drift) set."""

    kind = "image"

    def __init__(self, config: ConveyorConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self._scene: ConveyorScene | None = None
        self._index = 0
        self._opened_ns = 0
        self._next_due = 0.0

    def open(self) -> None:
        """Build the scene (textures); cheap, a few tens of ms."""
        try:
            self._scene = ConveyorScene(
                self.cfg.width,
                self.cfg.seed,
                ok_fraction=self.cfg.ok_fraction,
                hard_fraction=self.cfg.hard_fraction,
            )
        except Exception as exc:  # pragma: no cover - OpenCV/numpy failing is a broken install
            raise SourceError(
                f"cannot build the conveyor simulator: {exc}",
                where=f"source {self.name}",
                hint="check that numpy and opencv-python-headless are installed",
            ) from exc
        self._opened_ns = time.monotonic_ns()
        self._next_due = time.monotonic()
        logger.info(
            "conveyor %s: %dx%d, seed %d",
            self.name,
            self.cfg.width,
            self._scene.frame_height,
            self.cfg.seed,
        )

    def condition_at(self, index: int, elapsed_s: float) -> str | None:
        """The drift condition in effect for frame ``index`` at ``elapsed_s`` after open."""
        active: str | None = None
        for step in self.cfg.drift:
            reached = (step.after_frames is not None and index >= step.after_frames) or (
                step.after_s is not None and elapsed_s >= step.after_s
            )
            if reached:
                active = None if step.condition == "none" else step.condition
        return active

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame; ``None`` when the next one is not due within ``timeout``."""
        if self._scene is None:
            self.open()
        assert self._scene is not None
        if self.exhausted:
            return None
        if self.cfg.fps > 0:
            wait = self._next_due - time.monotonic()
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
            self._next_due = max(self._next_due + 1.0 / self.cfg.fps, time.monotonic() - 1.0)
        elapsed = (time.monotonic_ns() - self._opened_ns) / 1e9
        condition = self.condition_at(self._index, elapsed)
        shot = self._scene.render(self._index, condition)
        frame = Frame(
            source=self.name,
            index=self._index,
            ts_ns=time.time_ns(),
            mono_ns=time.perf_counter_ns(),
            image=shot.image,
            truth=shot.label,
            condition=condition,
        )
        self._index += 1
        return frame

    @property
    def exhausted(self) -> bool:
        """True after ``count`` frames."""
        return self.cfg.count is not None and self._index >= self.cfg.count


def _split_of(index: int) -> str:
    slot = index % 20
    for name, share in SPLITS:
        if slot < share:
            return name
        slot -= share
    raise AssertionError("unreachable")  # pragma: no cover


def export_dataset(
    out: Path, *, count: int, seed: int, condition: str | None, width: int | None
) -> str:
    """Write ``count`` frames as ``out/{train,val,test}/<label>/NNNNN.png`` plus ``dataset.json``.

    Frames go 70/15/15 to train/val/test by index. The images are full camera frames,
    what the edge node sees; the model's input spec crops and resizes them.

    Args:
        out: Dataset folder (created; existing images with the same names are replaced).
        count: Number of images in all splits together.
        seed: Random seed; the same seed gives the same images.
        condition: Drift condition to render, or None for the normal conditions.
        width: Frame width (height is 3/4); None: 640.

    Returns:
        A one-line summary for the CLI.

    Raises:
        SourceError: unknown condition, bad count or width, or a folder that cannot be written.
    """
    import cv2

    if condition in (None, "", "none"):
        condition = None
    if condition is not None and condition not in CONDITIONS:
        raise SourceError(
            f"unknown drift condition {condition!r}",
            where="simulate conveyor --condition",
            hint=f"use one of {', '.join(CONDITIONS)} (or leave it out)",
        )
    w = 640 if width is None else int(width)
    if count < 1 or w < 64 or w % 4:
        raise SourceError(
            f"need count >= 1 and a width >= 64 divisible by 4, got count={count}, width={w}",
            where="simulate conveyor",
            hint="e.g. --count 6000 --size 160",
        )
    scene = ConveyorScene(w, seed)
    counts: Counter[tuple[str, str]] = Counter()
    hard = 0
    started = time.monotonic()
    try:
        for i in range(count):
            shot = scene.render(i, condition)
            split = _split_of(i)
            folder = out / split / shot.label
            folder.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(folder / f"{i:05d}.png"), shot.image):
                raise OSError(f"cv2.imwrite failed for {folder / f'{i:05d}.png'}")
            counts[(split, shot.label)] += 1
            hard += shot.hard
            if (i + 1) % 500 == 0:
                logger.info("conveyor dataset: %d/%d images", i + 1, count)
        meta = {
            "generator": GENERATOR_VERSION,
            "labels": list(CLASSES),
            "seed": seed,
            "condition": condition,
            "width": w,
            "height": scene.frame_height,
            "count": count,
            "hard": hard,
            "splits": {
                split: {lab: counts[(split, lab)] for lab in CLASSES if counts[(split, lab)]}
                for split, _ in SPLITS
            },
        }
        (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise SourceError(
            f"cannot write the dataset: {exc}", where=str(out), hint="check the folder and space"
        ) from exc
    per_split = ", ".join(
        f"{split} {sum(v for (s, _), v in counts.items() if s == split)}" for split, _ in SPLITS
    )
    per_label = ", ".join(
        f"{lab} {sum(v for (_, la), v in counts.items() if la == lab)}" for lab in CLASSES
    )
    return (
        f"wrote {count} {w}x{scene.frame_height} images to {out} ({per_split}; {per_label}; "
        f"{hard} hard) seed {seed}, condition {condition or 'none'}, "
        f"{time.monotonic() - started:.1f}s"
    )
