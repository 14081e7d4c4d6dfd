"""Errors of the edge model runtime."""

from __future__ import annotations

__all__ = ["FrameError", "InferenceError", "ModelLoadError", "SensorInputError"]

from pipeline.errors import EdgeloopError


class ModelLoadError(EdgeloopError):
    """A model package cannot be loaded into onnxruntime or does not match its manifest."""


class InferenceError(EdgeloopError):
    """onnxruntime failed on one input, or the model produced non-finite output."""


class FrameError(EdgeloopError):
    """A camera frame cannot be preprocessed (None, wrong dtype or shape, empty).

    Args:
        reason: A short, stable code to count: ``none``, ``type``, ``dtype``,
            ``ndim``, ``channels``, ``empty``.
        message: The human explanation.
    """

    def __init__(
        self, reason: str, message: str, *, where: str | None = None, hint: str | None = None
    ):
        super().__init__(message, where=where, hint=hint)
        self.reason = reason


class SensorInputError(EdgeloopError):
    """A sensor block does not fit the model: a channel is missing or the rate differs."""
