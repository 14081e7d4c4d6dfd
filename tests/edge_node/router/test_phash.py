"""Perceptual hash: 16 hex digits, stable under small noise, different for different images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node.router import hamming, phash


def scene(seed: int, h: int = 480, w: int = 640) -> np.ndarray:
    """A random arrangement of bright shapes on a dark background."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 30, np.uint8)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(60, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, colour, -1)
        else:
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r // 2), colour, -1)
    return img


def test_format_and_identity():
    h = phash(scene(1))
    assert len(h) == 16
    assert int(h, 16) >= 0
    assert h == h.lower()
    assert phash(scene(1)) == h
    assert hamming(h, h) == 0


def test_hamming():
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("0000000000000001", "0000000000000003") == 1


def test_grey_and_bgr_agree():
    img = scene(2)
    assert phash(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)) == phash(img)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sigma=st.floats(1.0, 6.0))
def test_stable_under_small_noise(seed, sigma):
    img = scene(seed)
    noise = np.random.default_rng(seed + 1).normal(0, sigma, img.shape)
    noisy = np.clip(img + noise, 0, 255).astype(np.uint8)
    assert hamming(phash(img), phash(noisy)) <= 4


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), gain=st.floats(0.8, 1.2))
def test_stable_under_brightness_and_rescale(seed, gain):
    img = scene(seed)
    brighter = np.clip(img.astype(np.float64) * gain, 0, 255).astype(np.uint8)
    smaller = cv2.resize(brighter, (320, 240), interpolation=cv2.INTER_AREA)
    assert hamming(phash(img), phash(smaller)) <= 6


def test_different_scenes_differ():
    hashes = [phash(scene(s)) for s in range(40)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 6
    assert np.mean(distances) > 20


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 3, 3), (31, 33)])
def test_tiny_images(shape):
    assert len(phash(np.full(shape, 9, np.uint8))) == 16


def reference_phash(image: np.ndarray) -> str:
    """The documented algorithm with an explicit orthonormal DCT-II matrix."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
    n = np.arange(32)
    d = np.sqrt(2 / 32) * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / 64)
    d[0] /= np.sqrt(2)
    low = (d @ small @ d.T)[:8, :8].reshape(-1)
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_algorithm(seed):
    img = scene(seed)
    assert hamming(phash(img), reference_phash(img)) <= 1  # float32 vs float64 ties
    ac_bits = bin(int(phash(img), 16) & ((1 << 63) - 1)).count("1")
    assert ac_bits in (31, 32)  # half of the 63 AC coefficients lie above their median
