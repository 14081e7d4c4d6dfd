"""The anomaly model as one ONNX graph: feature front-end, autoencoder, reconstruction score.

The graph takes the raw normalised window ``(N, C, window)`` and computes its
features itself, so neither the edge runtime nor the cloud needs feature code:

* spectral: the window is cut into ``window/frame`` frames; each frame has its
  mean removed, a Hann taper applied and a DFT taken as one MatMul with fixed
  cos/sin matrices; the power is summed into log-spaced bands with a second
  MatMul, averaged over frames (Welch) and logged;
* statistics per channel: mean, log std, log kurtosis, log crest factor.

Features are standardised with training constants, passed through a small dense
autoencoder, and the score is the mean squared reconstruction error (shape (N,)).
Node names start with ``fe/`` (front-end), ``ae/`` (autoencoder) or ``score/``,
so quantization can keep the front-end in FP32 by name.
"""

from __future__ import annotations

__all__ = ["OPSET", "FrontEnd", "build_model", "node_scope"]

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OPSET = 17
_EPS = 1e-8


@dataclass(frozen=True)
class FrontEnd:
    """Shape of the feature front-end.

    Attributes:
        channels: Number of channels C.
        window: Samples per window.
        frame: Samples per DFT frame (divides ``window``).
        band_edges: DFT bin edges of the bands (ascending; bins ``[e_i, e_i+1)``).
    """

    channels: int
    window: int
    frame: int
    band_edges: tuple[int, ...]

    @staticmethod
    def default(channels: int, window: int = 1024, frame: int = 256) -> FrontEnd:
        """Log-spaced bands (each at least one bin wide) from bin 1 to Nyquist."""
        nyq = frame // 2 + 1
        edges = [1]
        while edges[-1] < nyq:
            edges.append(min(nyq, max(edges[-1] + 1, round(edges[-1] * 1.25))))
        return FrontEnd(channels, window, frame, tuple(edges))

    @property
    def bands(self) -> int:
        """Bands per channel."""
        return len(self.band_edges) - 1

    @property
    def features(self) -> int:
        """Feature vector length: bands plus four statistics, per channel."""
        return self.channels * (self.bands + 4)

    def feature_names(self, channel_names: Sequence[str]) -> list[str]:
        """Names of the feature vector's entries, for reports."""
        per = [f"band{i}" for i in range(self.bands)] + ["mean", "logstd", "logkurt", "logcrest"]
        return [f"{c}.{p}" for c in channel_names for p in per]


def node_scope(name: str) -> str:
    """``fe``, ``ae`` or ``score``: which part of the graph a node belongs to."""
    return name.split("/", 1)[0]


class _Graph:
    """A tiny helper that names nodes and initialisers with a scope prefix."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, scope: str, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        full = f"{scope}/{name}"
        self.inits.append(numpy_helper.from_array(value, full))
        return full

    def op(self, scope: str, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{scope}/{op.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def _dft_matrices(fe: FrontEnd) -> tuple[np.ndarray, np.ndarray]:
    """[cos | sin] (frame, 2K) with the Hann taper folded in, and stacked band sums (2K, B)."""
    n = np.arange(fe.frame)
    k = np.arange(fe.frame // 2 + 1)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / fe.frame)
    ang = 2 * np.pi * np.outer(n, k) / fe.frame
    cs = np.concatenate([np.cos(ang), np.sin(ang)], axis=1) * hann[:, None]
    bands = np.zeros((k.size, fe.bands))
    for b in range(fe.bands):
        bands[fe.band_edges[b] : fe.band_edges[b + 1], b] = 1.0
    # Power per bin normalised by the taper energy: white noise of variance s2 gives s2 per bin.
    bands /= float(np.sum(hann**2))
    return cs.astype(np.float32), np.concatenate([bands, bands]).astype(np.float32)


def _front_end(g: _Graph, x: str, fe: FrontEnd) -> str:
    """Features (N, C * (bands + 4)) of the input window (N, C, window)."""
    s, f32 = "fe", np.float32
    frames = fe.window // fe.frame
    shape = g.const(s, "frames_shape", np.array([0, fe.channels, frames, fe.frame], np.int64))
    xf = g.op(s, "Reshape", [x, shape])
    xf = g.op(s, "Sub", [xf, g.op(s, "ReduceMean", [xf], axes=[3], keepdims=1)])
    cs, bb = _dft_matrices(fe)
    spec = g.op(s, "MatMul", [xf, g.const(s, "dft", cs)])
    power = g.op(s, "MatMul", [g.op(s, "Mul", [spec, spec]), g.const(s, "bands", bb)])
    eps = g.const(s, "eps", np.array(_EPS, f32))
    bands = g.op(
        s, "Log", [g.op(s, "Add", [g.op(s, "ReduceMean", [power], axes=[2], keepdims=0), eps])]
    )

    mean = g.op(s, "ReduceMean", [x], axes=[2], keepdims=1)
    d = g.op(s, "Sub", [x, mean])
    d2 = g.op(s, "Mul", [d, d])
    var = g.op(s, "Add", [g.op(s, "ReduceMean", [d2], axes=[2], keepdims=1), eps])
    half = g.const(s, "half", np.array(0.5, f32))
    logstd = g.op(s, "Mul", [g.op(s, "Log", [var]), half])
    m4 = g.op(s, "ReduceMean", [g.op(s, "Mul", [d2, d2])], axes=[2], keepdims=1)
    logkurt = g.op(
        s, "Log", [g.op(s, "Add", [g.op(s, "Div", [m4, g.op(s, "Mul", [var, var])]), eps])]
    )
    peak = g.op(s, "ReduceMax", [g.op(s, "Abs", [d])], axes=[2], keepdims=1)
    logcrest = g.op(s, "Sub", [g.op(s, "Log", [g.op(s, "Add", [peak, eps])]), logstd])
    feats = g.op(s, "Concat", [bands, mean, logstd, logkurt, logcrest], axis=2)
    return g.op(s, "Flatten", [feats], axis=1)


def build_model(
    fe: FrontEnd,
    *,
    feat_mean: np.ndarray | None = None,
    feat_std: np.ndarray | None = None,
    layers: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    input_name: str = "input",
    output_name: str = "output",
) -> Any:
    """The ONNX model; without ``layers`` it outputs the raw features (N, D) instead of a score.

    Args:
        fe: Front-end shape.
        feat_mean: Feature means from training data (standardisation).
        feat_std: Feature standard deviations from training data.
        layers: Autoencoder dense layers ``(weight (out, in), bias (out,))``, ReLU between.
        input_name: ONNX input name.
        output_name: ONNX output name.

    Returns:
        An ``onnx.ModelProto``, checked.
    """
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    feats = _front_end(g, input_name, fe)
    if layers:
        assert feat_mean is not None
        assert feat_std is not None
        mu = g.const("score", "feat_mean", feat_mean.astype(np.float32))
        inv = g.const("score", "feat_inv_std", (1.0 / feat_std).astype(np.float32))
        z = g.op("score", "Mul", [g.op("score", "Sub", [feats, mu]), inv])
        # The same standardisation written differently, as the autoencoder's own input: INT8
        # quantization puts a QDQ pair (clipped to the calibration range) on the autoencoder's
        # input tensor, and the score must compare against the unclipped features.
        shift = g.const("ae", "feat_shift", (-feat_mean / feat_std).astype(np.float32))
        h = g.op("ae", "Add", [g.op("ae", "Mul", [feats, inv]), shift])
        for i, (w, b) in enumerate(layers):
            wi = g.const("ae", f"w{i}", w.astype(np.float32))
            bi = g.const("ae", f"b{i}", b.astype(np.float32))
            h = g.op("ae", "Gemm", [h, wi, bi], transB=1)
            if i < len(layers) - 1:
                h = g.op("ae", "Relu", [h])
        err = g.op("score", "Sub", [z, h])
        last = g.op("score", "ReduceMean", [g.op("score", "Mul", [err, err])], axes=[1], keepdims=0)
        out_shape: list[int | str] = ["N"]
    else:
        last = feats
        out_shape = ["N", fe.features]
    g.nodes.append(helper.make_node("Identity", [last], [output_name], name="score/output"))
    graph = helper.make_graph(
        g.nodes,
        "edgeloop_anomaly",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, ["N", fe.channels, fe.window]
            )
        ],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeloop"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
