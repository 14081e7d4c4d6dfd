"""INT8 static quantization with onnxruntime (QDQ, per-channel weights, calibration data)."""

from __future__ import annotations

__all__ = ["CALIBRATION_METHODS", "quantize_int8"]

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: tuple[CalibrationMethod, ...] = ("minmax", "entropy", "percentile")


class _Reader:
    """onnxruntime CalibrationDataReader over an iterable of input arrays."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._name = input_name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self._name: batch.astype(np.float32, copy=False)}


def quantize_int8(
    fp32_onnx: Path,
    out_onnx: Path,
    *,
    input_name: str,
    calibration: Iterable[np.ndarray],
    method: CalibrationMethod = "minmax",
    per_channel: bool = True,
    exclude_nodes: Sequence[str] = (),
    extra_options: dict[str, Any] | None = None,
) -> Path:
    """Quantize ``fp32_onnx`` to QDQ INT8 (U8 activations, S8 weights) at ``out_onnx``.

    Args:
        fp32_onnx: The FP32 model.
        out_onnx: Where to write the INT8 model.
        input_name: The model's input name.
        calibration: Input batches (float32, model input shape) from held-out data.
        method: Calibration method; pick it by measurement (``edgeloop models quantize
            --method auto`` tries all three).
        per_channel: Per-output-channel weight scales (better accuracy for convolutions).
        exclude_nodes: Node names kept in FP32 (e.g. a feature front-end).
        extra_options: Passed to onnxruntime's ``quantize_static``.
    """
    from onnxruntime.quantization import (
        CalibrationMethod as OrtMethod,
    )
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ort_method = {
        "minmax": OrtMethod.MinMax,
        "entropy": OrtMethod.Entropy,
        "percentile": OrtMethod.Percentile,
    }[method]
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    prepped = out_onnx.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(fp32_onnx), str(prepped), skip_symbolic_shape=True)
        options = {"ActivationSymmetric": False, "WeightSymmetric": True}
        options.update(extra_options or {})
        quantize_static(
            str(prepped),
            str(out_onnx),
            _Reader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=ort_method,
            nodes_to_exclude=list(exclude_nodes),
            extra_options=options,
        )
    finally:
        prepped.unlink(missing_ok=True)
    return out_onnx
