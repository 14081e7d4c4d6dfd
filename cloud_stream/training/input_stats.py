"""Ranges of the training images' statistics, for the edge's input-drift guard.

A model is often confidently wrong on inputs unlike anything it was trained on
(a dimmed lamp, a new surface finish), so confidence alone does not flag them.
The manifest's ``input_stats`` records what the training images looked like, in
model-input units; the edge treats a frame outside those ranges as uncertain.
"""

from __future__ import annotations

__all__ = ["measure_input_stats"]

import numpy as np

from pipeline.modelpkg import ImageInput, InputStats


def measure_input_stats(
    x: np.ndarray,
    spec: ImageInput,
    *,
    quantile: float = 0.001,
    margin: float = 0.25,
) -> InputStats:
    """Measure per-image channel means and contrast over a batch of model inputs.

    Args:
        x: Model inputs (N, C, H, W) or (N, H, W, C) as the spec lays them out,
            already scaled and normalised (what the model sees).
        spec: The input spec (for the layout).
        quantile: Ranges run from this quantile to 1 - quantile of the images.
        margin: Each range is widened by this fraction of its width on both sides,
            so ordinary variation in the field is not called drift.
    """
    axes = (2, 3) if spec.layout == "nchw" else (1, 2)
    means = x.mean(axis=axes)  # (N, C)
    contrast = x.reshape(len(x), -1).std(axis=1)

    def span(values: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(values, [quantile, 1.0 - quantile])
        pad = margin * float(high - low)
        return round(float(low) - pad, 4), round(float(high) + pad, 4)

    return InputStats(
        channel_mean=tuple(span(means[:, c]) for c in range(means.shape[1])),
        contrast=span(contrast),
        source=f"{len(x)} training images; quantiles {quantile}/{1 - quantile}, "
        f"widened by {margin:.0%}",
    )
