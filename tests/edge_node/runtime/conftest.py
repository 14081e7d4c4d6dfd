"""Tiny ONNX models and packages built in the test, so runtime tests need no trained model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.modelpkg import ModelPackage, load_package, write_package

OPSET = 17


def _model(nodes, inputs, outputs, inits=(), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def classifier_model(
    classes: int = 3,
    channels: int = 3,
    height: int = 16,
    width: int = 16,
    *,
    softmax: bool = True,
    layout: str = "nchw",
    input_name: str = "input",
    output_name: str = "output",
    batch: Any = "N",
    opset: int = OPSET,
    weights: np.ndarray | None = None,
) -> onnx.ModelProto:
    """Conv(identity) -> GlobalAveragePool -> Flatten -> Gemm -> [Softmax].

    The conv keeps each channel, so the logits are ``W @ channel_means``:
    with the default identity-like weights, class i's logit is ``10 * mean(channel i)``.
    """
    shape = (
        [batch, channels, height, width] if layout == "nchw" else [batch, height, width, channels]
    )
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])
    conv_w = np.zeros((channels, channels, 3, 3), np.float32)
    for c in range(channels):
        conv_w[c, c, 1, 1] = 1.0
    if weights is None:
        weights = np.zeros((classes, channels), np.float32)
        for k in range(classes):
            weights[k, k % channels] = 10.0
    nodes = []
    src = input_name
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [src], ["t"], perm=[0, 3, 1, 2]))
        src = "t"
    logits = output_name if not softmax else "logits"
    nodes += [
        helper.make_node("Conv", [src, "cw"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "gw"], [logits], transB=1),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [output_name], axis=-1))
    inits = [
        numpy_helper.from_array(conv_w, "cw"),
        numpy_helper.from_array(weights.astype(np.float32), "gw"),
    ]
    return _model(nodes, [x], [y], inits, opset)


def sensor_model(channels: int = 2, window: int = 8, *, opset: int = OPSET) -> onnx.ModelProto:
    """Score = mean of x**2 over the window and channels (x normalised): shape (N,)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, window])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N"])
    nodes = [
        helper.make_node("Mul", ["input", "input"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["output"], axes=[1, 2], keepdims=0),
    ]
    return _model(nodes, [x], [y], opset=opset)


def classify_manifest(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "tiny-cls",
        "version": "1.0.0",
        "task": "classify",
        "precision": "fp32",
        "opset": OPSET,
        "input": {"kind": "image", "width": 16, "height": 16},
        "output": "output",
        "output_kind": "probs",
        "labels": ["ok", "crack", "scratch"],
        "thresholds": {"kind": "classify", "min_confidence": 0.8},
    }
    fields.update(overrides)
    return fields


def anomaly_manifest(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "tiny-anom",
        "version": "1.0.0",
        "task": "anomaly",
        "precision": "fp32",
        "opset": OPSET,
        "input": {
            "kind": "sensor",
            "rate_hz": 100.0,
            "window": 8,
            "hop": 4,
            "channels": [
                {"name": "vib", "mean": 0.0, "std": 1.0, "min": -50.0, "max": 50.0},
                {"name": "temp", "mean": 20.0, "std": 2.0, "min": -40.0, "max": 150.0},
            ],
        },
        "output": "output",
        "output_kind": "score",
        "labels": ["normal", "anomaly"],
        "thresholds": {"kind": "anomaly", "raise_at": 4.0, "clear_at": 2.0},
    }
    fields.update(overrides)
    return fields


PackageFactory = Callable[..., ModelPackage]


@pytest.fixture
def make_package(tmp_path: Path) -> PackageFactory:
    """Write a package from an ONNX model (or raw bytes) and a manifest dict, then load it."""
    counter = iter(range(1000))

    def make(model: onnx.ModelProto | bytes, manifest: dict[str, Any]) -> ModelPackage:
        n = next(counter)
        src = tmp_path / f"src{n}.onnx"
        src.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return load_package(write_package(tmp_path / f"pkg{n}", src, manifest))

    return make
