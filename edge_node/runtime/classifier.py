"""Image classification with a model package: preprocess, run, read the class probabilities."""

from __future__ import annotations

__all__ = ["ImageClassifier", "softmax"]

import logging
import time

import numpy as np

from edge_node.runtime.errors import ModelLoadError
from edge_node.runtime.preprocess import Preprocessor
from edge_node.runtime.results import Classification
from edge_node.runtime.session import ModelSession
from pipeline.modelpkg import ClassifyThresholds, ImageInput, ModelPackage

logger = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / np.sum(e, axis=-1, keepdims=True)
    return out


def _as_probs(raw: np.ndarray) -> np.ndarray:
    """Clip a model's probability output into a distribution (INT8 outputs drift a little)."""
    p = np.clip(raw, 0.0, 1.0)
    total = float(np.sum(p))
    if total <= 0.0:
        return np.full(p.shape, 1.0 / p.size)
    out: np.ndarray = p / total
    return out


class ImageClassifier:
    """Classifies BGR frames with one ``classify`` model package.

    Args:
        package: A checked package whose task is ``classify``.
        threads: onnxruntime intra-op threads.
        warmup: Warm-up runs at load.
        fast_resize: See :class:`Preprocessor` (off: exact ``INTER_AREA``).

    Raises:
        ModelLoadError: the package is not a classifier or does not load.
    """

    def __init__(
        self,
        package: ModelPackage,
        *,
        threads: int = 1,
        warmup: int = 3,
        fast_resize: bool = False,
    ) -> None:
        m = package.manifest
        if m.task != "classify" or not isinstance(m.input, ImageInput):
            raise ModelLoadError(
                f"model {m.name} is a {m.task} model, not an image classifier",
                where=str(package.path),
                hint="give this camera a classify model package",
            )
        self.package = package
        self.manifest = m
        self.labels: tuple[str, ...] = tuple(m.labels)
        self.preprocess = Preprocessor(m.input, fast_resize=fast_resize)
        self.session = ModelSession(package, threads=threads, warmup=0)
        self._logits = m.output_kind == "logits"
        self._nchw = m.input.layout == "nchw"
        self.last_latency_ms = 0.0
        self.last_preprocess_ms = 0.0
        self.last_inference_ms = 0.0
        self.warmup(warmup)

    @property
    def thresholds(self) -> ClassifyThresholds:
        """The manifest's classification thresholds."""
        assert isinstance(self.manifest.thresholds, ClassifyThresholds)
        return self.manifest.thresholds

    def classify(self, image: object) -> Classification:
        """Classify one frame.

        Args:
            image: HxWx3 uint8 BGR.

        Raises:
            FrameError: the frame is unreadable (count it and skip the frame).
            InferenceError: onnxruntime failed on it.
        """
        start = time.perf_counter_ns()
        tensor = self.preprocess(image)
        mid = time.perf_counter_ns()
        raw = self.session.run(tensor).reshape(-1)
        probs = softmax(raw) if self._logits else _as_probs(raw)
        drift = self._input_drift(tensor)
        end = time.perf_counter_ns()
        self.last_preprocess_ms = (mid - start) / 1e6
        self.last_inference_ms = self.session.last_ms
        self.last_latency_ms = (end - start) / 1e6
        return Classification.from_probs(self.labels, probs, self.last_latency_ms, drift)

    def _input_drift(self, tensor: np.ndarray) -> str | None:
        """Which statistic of this input lies outside the training images' range, if any."""
        stats = self.manifest.input_stats
        if stats is None:
            return None
        axes = (0, 2, 3) if self._nchw else (0, 1, 2)
        means = tensor.mean(axis=axes)
        for i, (low, high) in enumerate(stats.channel_mean):
            if not low <= float(means[i]) <= high:
                return f"brightness.{i}"
        low, high = stats.contrast
        if not low <= float(tensor.std()) <= high:
            return "contrast"
        return None

    def warmup(self, n: int = 3) -> None:
        """Classify ``n`` grey frames so the first real frame runs at steady-state speed."""
        spec = self.manifest.input
        assert isinstance(spec, ImageInput)
        grey = np.full((spec.height, spec.width, 3), 128, dtype=np.uint8)
        for _ in range(n):
            self.classify(grey)
