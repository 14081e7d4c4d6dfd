"""Where a classified frame goes: confident (local only), uncertain or audit (uploaded).

Uncertain frames go to the cloud's slow path when the source's upload budget
has a token and the frame is not a near-duplicate (perceptual hash) of a recent
upload of that source. A seeded random share of confident frames goes up for
drift audit, from a small budget of its own; when it cannot go, the frame stays
``confident``. The router counts every route, upload and skip.
"""

from __future__ import annotations

__all__ = ["RouteDecision", "RouteName", "Router", "SkipReason", "encode_upload"]

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge_node.router.budget import BudgetSet, Clock
from edge_node.router.config import RouterConfig, UploadCrop
from edge_node.router.phash import phash
from edge_node.router.scoring import UncertainReason, effective_thresholds, uncertain_reason
from edge_node.runtime.results import Classification
from pipeline.modelpkg import ClassifyThresholds

logger = logging.getLogger(__name__)

RouteName = Literal["confident", "uncertain", "audit"]
SkipReason = Literal["budget", "duplicate", "encode"]


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What to do with one classified frame.

    Attributes:
        route: ``confident``, ``uncertain`` or ``audit`` (the result's ``route``).
        upload: Whether to publish ``jpeg`` as a frame message.
        jpeg: The encoded upload, when ``upload``.
        phash: Perceptual hash of the uploaded region (16 hex digits), when an upload
            was considered (uncertain, or sampled for audit).
        width: Width of the encoded upload (0 when nothing is uploaded).
        height: Height of the encoded upload (0 when nothing is uploaded).
        skipped: Why a frame that would have gone up did not, or None.
        reason: Which threshold made the frame uncertain, or None.
    """

    route: RouteName
    upload: bool = False
    jpeg: bytes | None = None
    phash: str | None = None
    width: int = 0
    height: int = 0
    skipped: SkipReason | None = None
    reason: UncertainReason | None = None


def _crop(image: np.ndarray, crop: UploadCrop | None) -> np.ndarray:
    if crop is None:
        return image
    h, w = image.shape[:2]
    x0, y0 = int(crop.x * w), int(crop.y * h)
    x1 = min(w, max(x0 + 1, round((crop.x + crop.width) * w)))
    y1 = min(h, max(y0 + 1, round((crop.y + crop.height) * h)))
    return image[y0:y1, x0:x1]


def encode_upload(image: np.ndarray, max_side: int, quality: int) -> bytes | None:
    """JPEG of ``image`` downscaled (``INTER_AREA``) to at most ``max_side``; None on failure."""
    h, w = image.shape[:2]
    side = max(h, w)
    if side > max_side:
        s = max_side / side
        size = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(buf) if ok else None


def _scaled(w: int, h: int, max_side: int) -> tuple[int, int]:
    side = max(h, w)
    if side <= max_side:
        return w, h
    s = max_side / side
    return max(1, round(w * s)), max(1, round(h * s))


class Router:
    """Routes classifications of one device's cameras; thread-safe.

    Args:
        config: Router settings.
        thresholds: The model manifest's thresholds (config overrides are applied).
        clock: Monotonic seconds for budgets and duplicate expiry (injectable).
    """

    def __init__(
        self,
        config: RouterConfig,
        thresholds: ClassifyThresholds,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.thresholds = effective_thresholds(thresholds, config)
        self._clock = clock
        self._rng = random.Random(config.seed)
        self._uploads = BudgetSet(config.frames_per_min, config.burst, clock)
        self._audits = BudgetSet(config.audit_frames_per_min, config.audit_burst, clock)
        self._recent: dict[str, deque[tuple[int, float]]] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def counters(self) -> dict[str, int]:
        """A copy of the counts.

        Names: ``routes.<route>``, ``uploads.<route>``, ``skips.<reason>`` (uncertain
        frames not uploaded) and ``skips.audit_<reason>`` (audit samples not uploaded).
        """
        with self._lock:
            return dict(self.counts)

    def _duplicate(self, source: str, digest: int, now: float) -> bool:
        if self.config.dedup_hamming < 0:
            return False
        recent = self._recent.get(source)
        if not recent:
            return False
        while recent and now - recent[0][1] > self.config.dedup_ttl_s:
            recent.popleft()
        limit = self.config.dedup_hamming
        return any((digest ^ h).bit_count() <= limit for h, _ in recent)

    def _remember(self, source: str, digest: int, now: float) -> None:
        recent = self._recent.get(source)
        if recent is None:
            recent = self._recent[source] = deque(maxlen=self.config.dedup_window)
        recent.append((digest, now))

    def route(self, source: str, cls: Classification, image: np.ndarray) -> RouteDecision:
        """Decide one frame's route and, when it goes up, encode it.

        Args:
            source: Source name (budgets and duplicate memory are per source).
            cls: The classification of ``image``.
            image: The frame, HxWx3 uint8 BGR (already checked by the classifier).
        """
        reason = uncertain_reason(cls, self.thresholds)
        with self._lock:
            if reason is None:
                sampled = self.config.audit_rate > 0 and self._rng.random() < self.config.audit_rate
                if not sampled:
                    self._count("routes.confident")
                    return RouteDecision(route="confident")
            decision = self._upload(source, image, reason)
            self._count(f"routes.{decision.route}")
            if decision.upload:
                self._count(f"uploads.{decision.route}")
            elif decision.skipped:
                prefix = "skips." if reason is not None else "skips.audit_"
                self._count(prefix + decision.skipped)
            return decision

    def _upload(
        self, source: str, image: np.ndarray, reason: UncertainReason | None
    ) -> RouteDecision:
        route: RouteName = "uncertain" if reason is not None else "audit"
        fallback: RouteName = "uncertain" if reason is not None else "confident"
        region = _crop(image, self.config.upload_crop)
        digest_hex = phash(region)
        digest = int(digest_hex, 16)
        now = self._clock()
        if self._duplicate(source, digest, now):
            return RouteDecision(fallback, phash=digest_hex, skipped="duplicate", reason=reason)
        budget = self._uploads if reason is not None else self._audits
        if not budget.take(source):
            return RouteDecision(fallback, phash=digest_hex, skipped="budget", reason=reason)
        jpeg = encode_upload(region, self.config.upload_max_side, self.config.jpeg_quality)
        if jpeg is None:
            logger.warning("JPEG encoding failed for a frame of %s", source)
            return RouteDecision(fallback, phash=digest_hex, skipped="encode", reason=reason)
        self._remember(source, digest, now)
        w, h = _scaled(region.shape[1], region.shape[0], self.config.upload_max_side)
        return RouteDecision(
            route, True, jpeg, digest_hex, width=w, height=h, skipped=None, reason=reason
        )
