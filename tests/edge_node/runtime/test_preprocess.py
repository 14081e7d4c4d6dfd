"""Preprocessing against a plain numpy/OpenCV reference, and unreadable frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node.runtime import FrameError, Preprocessor
from pipeline.modelpkg import ImageInput


def reference(image: np.ndarray, spec: ImageInput) -> np.ndarray:
    """Straightforward implementation of the documented steps."""
    h, w = image.shape[:2]
    if spec.crop < 1:
        side = max(1, round(min(h, w) * spec.crop))
        y0, x0 = (h - side) // 2, (w - side) // 2
        image = image[y0 : y0 + side, x0 : x0 + side]
    if spec.resize == "stretch":
        img = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    else:
        ih, iw = image.shape[:2]
        s = min(spec.width / iw, spec.height / ih)
        nw, nh = max(1, min(spec.width, round(iw * s))), max(1, min(spec.height, round(ih * s)))
        img = np.zeros((spec.height, spec.width, 3), np.uint8)
        x0, y0 = (spec.width - nw) // 2, (spec.height - nh) // 2
        img[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    if spec.color == "rgb":
        img = img[:, :, ::-1]
    elif spec.color == "gray":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    x = img.astype(np.float64) * spec.scale
    x = (x - np.array(spec.mean)) / np.array(spec.std)
    if spec.layout == "nchw":
        x = x.transpose(2, 0, 1)
    return x[None].astype(np.float32)


SPECS = [
    ImageInput(width=96, height=96),
    ImageInput(width=64, height=48, color="bgr", layout="nhwc", crop=0.5),
    ImageInput(
        width=96,
        height=64,
        resize="letterbox",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
    ImageInput(width=32, height=32, color="gray", mean=(0.5,), std=(0.25,), resize="letterbox"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.color}-{s.layout}-{s.resize}-{s.crop}")
def test_matches_reference(spec):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pre = Preprocessor(spec)
    got = pre(image)
    np.testing.assert_allclose(got, reference(image, spec), rtol=1e-5, atol=1e-5)
    shape = (1, spec.channels, spec.height, spec.width)
    if spec.layout == "nhwc":
        shape = (1, spec.height, spec.width, spec.channels)
    assert got.shape == shape
    assert got.dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 200),
    w=st.integers(1, 200),
    crop=st.sampled_from([1.0, 0.7, 0.01]),
    resize=st.sampled_from(["stretch", "letterbox"]),
)
def test_any_frame_size_matches_reference(h, w, crop, resize):
    spec = ImageInput(width=24, height=16, crop=crop, resize=resize)
    image = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_allclose(Preprocessor(spec)(image), reference(image, spec), atol=1e-5)


def test_letterbox_pads_with_black_and_keeps_aspect():
    spec = ImageInput(width=32, height=32, resize="letterbox", scale=1.0)
    image = np.full((20, 40, 3), 200, np.uint8)  # 2:1 -> 32x16 centred
    out = Preprocessor(spec)(image)[0, 0]
    assert (out[:8] == 0).all()
    assert (out[24:] == 0).all()
    assert (out[8:24] == 200).all()


def test_buffer_is_reused():
    pre = Preprocessor(ImageInput(width=16, height=16))
    a = pre(np.zeros((30, 30, 3), np.uint8))
    b = pre(np.full((30, 30, 3), 255, np.uint8))
    assert a is b


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (None, "none"),
        ([[1, 2, 3]], "type"),
        (np.zeros((10, 10, 3), np.float32), "dtype"),
        (np.zeros((10, 10), np.uint8), "ndim"),
        (np.zeros((10, 10, 4), np.uint8), "channels"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 0, 3), np.uint8), "empty"),
    ],
)
def test_unreadable_frames(image, reason):
    with pytest.raises(FrameError) as err:
        Preprocessor(ImageInput(width=16, height=16))(image)
    assert err.value.reason == reason
    assert err.value.hint


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_fast_resize_is_close_to_exact(resize):
    spec = ImageInput(width=96, height=96, resize=resize, scale=1.0)
    smooth = cv2.GaussianBlur(
        np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 4
    )
    exact = Preprocessor(spec)(smooth).copy()
    fast = Preprocessor(spec, fast_resize=True)(smooth)
    assert not np.array_equal(exact, fast)  # it did take the other path
    assert np.abs(exact - fast).mean() < 1.0
