"""Routing: confident/uncertain/audit, budget, near-duplicates, encoding, counts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_node.router import Router, RouterConfig, UploadCrop, phash
from edge_node.runtime import Classification
from pipeline.modelpkg import ClassifyThresholds
from tests.edge_node.router.test_phash import scene

LABELS = ("ok", "crack")
SURE = Classification.from_probs(LABELS, np.array([0.99, 0.01]))
UNSURE = Classification.from_probs(LABELS, np.array([0.6, 0.4]))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock | None = None, **cfg: object) -> Router:
    fields: dict[str, object] = {"seed": 1, "audit_rate": 0.0}
    fields.update(cfg)
    return Router(RouterConfig(**fields), ClassifyThresholds(), clock=clock or FakeClock())


def test_confident_is_not_uploaded():
    router = make()
    d = router.route("cam0", SURE, scene(0))
    assert (d.route, d.upload, d.jpeg, d.phash, d.skipped) == ("confident", False, None, None, None)
    assert router.counters() == {"routes.confident": 1}


def test_uncertain_is_uploaded_as_jpeg():
    router = make()
    img = scene(0)
    d = router.route("cam0", UNSURE, img)
    assert d.route == "uncertain"
    assert d.upload
    assert d.reason == "confidence"
    assert d.phash == phash(img)
    assert d.jpeg is not None
    assert d.jpeg[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(d.jpeg, np.uint8), cv2.IMREAD_COLOR)
    # Downscaled to the default upload_max_side (320) with the aspect ratio kept.
    assert decoded.shape == (240, 320, 3) == (d.height, d.width, 3)
    assert router.counters() == {"routes.uncertain": 1, "uploads.uncertain": 1}


def test_near_duplicates_are_suppressed_until_they_expire():
    clock = FakeClock()
    router = make(clock, dedup_ttl_s=60)
    img = scene(0)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 2, img.shape), 0, 255)
    assert router.route("cam0", UNSURE, img).upload
    d = router.route("cam0", UNSURE, noisy.astype(np.uint8))
    assert (d.route, d.upload, d.skipped) == ("uncertain", False, "duplicate")
    assert router.route("cam0", UNSURE, scene(1)).upload
    assert router.route("cam1", UNSURE, img).upload  # other source, own memory
    clock.now += 61
    assert router.route("cam0", UNSURE, img).upload
    counts = router.counters()
    assert counts["skips.duplicate"] == 1
    assert counts["uploads.uncertain"] == 4


def test_dedupe_window_is_bounded():
    router = make(dedup_window=2, burst=10)
    for s in (0, 1, 2):
        assert router.route("cam0", UNSURE, scene(s)).upload
    assert router.route("cam0", UNSURE, scene(0)).upload  # scene 0 fell out of the window
    assert not router.route("cam0", UNSURE, scene(2)).upload


def test_dedupe_distance_is_inclusive():
    router = make(dedup_hamming=0)
    assert router.route("cam0", UNSURE, scene(0)).upload
    assert router.route("cam0", UNSURE, scene(0)).skipped == "duplicate"  # distance 0 <= 0


def test_dedupe_off():
    router = make(dedup_hamming=-1)
    assert router.route("cam0", UNSURE, scene(0)).upload
    assert router.route("cam0", UNSURE, scene(0)).upload


def test_budget_limits_uploads():
    clock = FakeClock()
    router = make(clock, frames_per_min=6, burst=2)
    got = [router.route("cam0", UNSURE, scene(s)) for s in range(4)]
    assert [d.upload for d in got] == [True, True, False, False]
    assert got[2].skipped == "budget"
    assert got[2].route == "uncertain"
    assert got[2].phash is not None
    clock.now += 10
    assert router.route("cam0", UNSURE, scene(10)).upload
    assert router.counters()["skips.budget"] == 2


def test_duplicates_do_not_spend_budget():
    router = make(burst=2, frames_per_min=0)
    img = scene(0)
    assert router.route("cam0", UNSURE, img).upload
    for _ in range(5):
        assert router.route("cam0", UNSURE, img).skipped == "duplicate"
    assert router.route("cam0", UNSURE, scene(1)).upload


def test_audit_samples_a_seeded_share_of_confident_frames():
    def routes(seed: int) -> list[str]:
        router = make(
            audit_rate=0.2, seed=seed, audit_frames_per_min=0, audit_burst=10_000, dedup_hamming=-1
        )
        img = scene(0)
        return [router.route("cam0", SURE, img).route for _ in range(500)]

    first = routes(7)
    assert first == routes(7)
    assert first != routes(8)
    share = first.count("audit") / len(first)
    assert 0.14 < share < 0.26
    assert set(first) == {"audit", "confident"}


def test_audit_has_its_own_budget_and_falls_back_to_confident():
    router = make(audit_rate=1.0, audit_frames_per_min=0, audit_burst=1, burst=1)
    a = router.route("cam0", SURE, scene(0))
    b = router.route("cam0", SURE, scene(1))
    assert (a.route, a.upload) == ("audit", True)
    assert (b.route, b.upload, b.skipped) == ("confident", False, "budget")
    assert router.route("cam0", UNSURE, scene(2)).upload  # uncertain budget untouched
    counts = router.counters()
    assert counts["uploads.audit"] == 1
    assert counts["skips.audit_budget"] == 1


def test_crop_and_downscale():
    router = make(upload_max_side=100, upload_crop=UploadCrop(x=0.25, y=0.0, width=0.5, height=1.0))
    d = router.route("cam0", UNSURE, scene(0))
    assert (d.width, d.height) == (67, 100)  # 320x480 region -> longest side 100
    assert d.phash == phash(scene(0)[:, 160:480])
    assert d.jpeg is not None
    decoded = cv2.imdecode(np.frombuffer(d.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (100, 67, 3)


def test_jpeg_quality_changes_size():
    img = scene(3)
    low = make(jpeg_quality=20).route("c", UNSURE, img).jpeg
    high = make(jpeg_quality=95).route("c", UNSURE, img).jpeg
    assert low is not None
    assert high is not None
    assert len(low) < len(high)


def test_threshold_override_applies():
    router = make(min_confidence=0.5)
    assert router.route("cam0", UNSURE, scene(0)).route == "confident"


def test_crop_must_be_inside():
    with pytest.raises(ValueError):
        UploadCrop(x=0.6, width=0.5)
