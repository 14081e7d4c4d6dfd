"""Image-folder datasets: discovery, splits, loading and the manifest's input steps.

Two layouts are accepted:

* ``root/{train,val,test}/<label>/*`` (what ``edgeloop edge simulate conveyor`` writes);
* ``root/<label>/*``: a plain folder per class, split 70/15/15 by a hash of each
  file's relative path (deterministic, and stable when files are added).

Images are turned into model input exactly as the edge runtime does it, following
:class:`pipeline.modelpkg.ImageInput`: centre crop, resize, colour, then scale,
mean and std (see :func:`prepare` and :func:`to_input`).
"""

from __future__ import annotations

__all__ = [
    "IMAGE_EXTS",
    "ImageDataset",
    "TrainingDataError",
    "collection",
    "load_split",
    "prepare",
    "require_split",
    "scan",
    "to_input",
]

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.progress import Progress
from pipeline.errors import EdgeloopError
from pipeline.modelpkg import ImageInput

logger = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val", "test")


class TrainingDataError(EdgeloopError):
    """A dataset cannot be used for training or evaluation."""


@dataclass(frozen=True)
class ImageDataset:
    """A scanned image-folder dataset.

    Attributes:
        root: The dataset folder.
        labels: Class labels in model output order.
        splits: split name -> list of (image path, label index).
        meta: ``dataset.json`` content when present.
    """

    root: Path
    labels: tuple[str, ...]
    splits: dict[str, list[tuple[Path, int]]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def condition(self) -> str | None:
        """The simulator drift condition the data was rendered under, if any."""
        value = self.meta.get("condition")
        return str(value) if value else None

    def split(self, name: str) -> list[tuple[Path, int]]:
        """The items of one split (empty list when it has none)."""
        return self.splits.get(name, [])


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _hash_split(rel: str) -> str:
    bucket = int(hashlib.sha1(rel.encode(), usedforsecurity=False).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


def _find(root: Path) -> dict[str, list[tuple[Path, str]]]:
    """split -> (image, label name), from split folders or by hash of the path."""
    found: dict[str, list[tuple[Path, str]]] = {}
    if any((root / s).is_dir() for s in SPLITS):
        for split in SPLITS:
            folder = root / split
            if folder.is_dir():
                for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
                    found.setdefault(split, []).extend((img, sub.name) for img in _images(sub))
        return found
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in _images(sub):
            rel = img.relative_to(root).as_posix()
            found.setdefault(_hash_split(rel), []).append((img, sub.name))
    return found


def scan(root: Path) -> ImageDataset:
    """Find the labels and split members of an image-folder dataset.

    Raises:
        TrainingDataError: missing folder, no class folders, no images, or one class only.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(
            "dataset folder not found",
            where=str(root),
            hint="give a folder with one subfolder per class, or run "
            "'edgeloop edge simulate conveyor --out DIR'",
        )
    meta: dict[str, Any] = {}
    if (root / "dataset.json").is_file():
        try:
            meta = json.loads((root / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TrainingDataError(
                f"unreadable dataset.json: {exc}",
                where=str(root / "dataset.json"),
                hint="fix or delete it",
            ) from exc
    found = _find(root)
    present = sorted({lab for items in found.values() for _, lab in items})
    if not present:
        raise TrainingDataError(
            "no images found",
            where=str(root),
            hint=f"expected root/<label>/<image> or root/train/<label>/<image> with one of "
            f"{sorted(IMAGE_EXTS)}",
        )
    if len(present) < 2:
        raise TrainingDataError(
            f"only one class ({present[0]!r}); a classifier needs at least two",
            where=str(root),
            hint="add a folder of images for every class",
        )
    declared = [str(x) for x in meta.get("labels", [])]
    labels = tuple(declared) if set(present) <= set(declared) else tuple(present)
    index = {lab: i for i, lab in enumerate(labels)}
    splits = {s: [(p, index[lab]) for p, lab in items] for s, items in found.items()}
    logger.info(
        "dataset %s: %d labels, %s",
        root,
        len(labels),
        ", ".join(f"{s} {len(v)}" for s, v in splits.items()),
    )
    return ImageDataset(root=root, labels=labels, splits=splits, meta=meta)


def require_split(dataset: ImageDataset, name: str) -> list[tuple[Path, int]]:
    """The items of split ``name``; raises :class:`TrainingDataError` when it is empty."""
    items = dataset.split(name)
    if not items:
        raise TrainingDataError(
            f"the dataset has no {name} images",
            where=str(dataset.root),
            hint=f"add root/{name}/<label>/ folders, or use the flat root/<label>/ layout "
            "(split 70/15/15 by a hash of each path)",
        )
    return items


def collection(root: Path) -> list[ImageDataset]:
    """Datasets in ``root``: itself, or each subfolder holding a ``dataset.json``.

    A folder of simulator datasets (in-distribution plus one per drift condition) is
    evaluated as a whole; the in-distribution one comes first.
    """
    root = Path(root)
    subs = (
        [p for p in sorted(root.iterdir()) if (p / "dataset.json").is_file()]
        if (root.is_dir() and not (root / "dataset.json").is_file())
        else []
    )
    if not subs:
        return [scan(root)]
    sets = [scan(p) for p in subs]
    return sorted(sets, key=lambda d: (d.condition is not None, d.condition or ""))


def prepare(image: np.ndarray, spec: ImageInput) -> np.ndarray:
    """Crop, resize and convert colour of one BGR uint8 frame: HxWxC uint8 model image.

    ``crop`` below 1 takes a centred square of ``crop`` times the shorter side.
    """
    import cv2

    out: np.ndarray
    h, w = image.shape[:2]
    if spec.crop < 1.0:
        side = max(1, round(spec.crop * min(h, w)))
        y0, x0 = (h - side) // 2, (w - side) // 2
        image = image[y0 : y0 + side, x0 : x0 + side]
        h, w = side, side
    interp = cv2.INTER_AREA  # what the edge runtime uses (edge_node.runtime.preprocess)
    if spec.resize == "letterbox":
        k = min(spec.width / w, spec.height / h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        small = cv2.resize(image, (nw, nh), interpolation=interp)
        out = np.zeros((spec.height, spec.width, 3), np.uint8)
        y0, x0 = (spec.height - nh) // 2, (spec.width - nw) // 2
        out[y0 : y0 + nh, x0 : x0 + nw] = small
    elif (w, h) != (spec.width, spec.height):
        out = cv2.resize(image, (spec.width, spec.height), interpolation=interp)
    else:
        out = np.ascontiguousarray(image)
    if spec.color == "rgb":
        out = out[:, :, ::-1]
    elif spec.color == "gray":
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[:, :, None]
    return np.ascontiguousarray(out)


def to_input(batch: np.ndarray, spec: ImageInput) -> np.ndarray:
    """Scale and normalise a uint8 batch (N, H, W, C) into the model's float32 layout."""
    x = batch.astype(np.float32) * np.float32(spec.scale)
    x -= np.asarray(spec.mean, np.float32)
    x /= np.asarray(spec.std, np.float32)
    if spec.layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def load_split(
    items: list[tuple[Path, int]], spec: ImageInput, *, what: str = "images"
) -> tuple[np.ndarray, np.ndarray]:
    """Read and prepare images: uint8 array (N, H, W, C) and int64 labels (N,).

    Raises:
        TrainingDataError: an image cannot be read.
    """
    import cv2

    xs = np.zeros((len(items), spec.height, spec.width, spec.channels), np.uint8)
    ys = np.zeros(len(items), np.int64)
    progress = Progress(len(items), f"loading {what}")
    for i, (path, label) in enumerate(items):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise TrainingDataError(
                "unreadable image",
                where=str(path),
                hint="delete or replace the file (is it a real image?)",
            )
        xs[i] = prepare(image, spec)
        ys[i] = label
        progress.step()
    progress.done()
    return xs, ys
