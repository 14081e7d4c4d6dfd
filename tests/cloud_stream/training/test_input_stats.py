"""Input statistics for the edge's drift guard, measured from training inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_stream.training.input_stats import measure_input_stats
from pipeline.modelpkg import ImageInput


def test_ranges_cover_the_training_images_with_a_margin() -> None:
    rng = np.random.default_rng(0)
    spec = ImageInput(width=8, height=8)
    # 200 images whose channel means lie in [-0.5, 0.5] and contrast around 1.
    x = rng.normal(0.0, 1.0, size=(200, 3, 8, 8)).astype(np.float32)
    x += rng.uniform(-0.5, 0.5, size=(200, 3, 1, 1)).astype(np.float32)
    stats = measure_input_stats(x, spec, quantile=0.0, margin=0.25)
    means = x.mean(axis=(2, 3))
    for c, (low, high) in enumerate(stats.channel_mean):
        lo, hi = means[:, c].min(), means[:, c].max()
        assert low < lo
        assert high > hi
        assert high - low == pytest.approx(1.5 * (hi - lo), abs=1e-3)
    low, high = stats.contrast
    assert low < x.reshape(200, -1).std(axis=1).min()
    # A dark frame (every channel far below) is outside, an ordinary one inside.
    dark = x[:1] - 3.0
    assert dark.mean() < stats.channel_mean[0][0]


def test_nhwc_layout() -> None:
    spec = ImageInput(width=8, height=8, layout="nhwc")
    x = np.zeros((10, 8, 8, 3), np.float32)
    x[..., 2] = 1.0
    stats = measure_input_stats(x, spec)
    assert stats.channel_mean[2] == (1.0, 1.0)
    assert stats.channel_mean[0] == (0.0, 0.0)
