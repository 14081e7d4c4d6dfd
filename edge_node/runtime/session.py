"""onnxruntime sessions tuned for one-core edge inference, checked against the manifest.

Every check runs at load, so a package that cannot work fails at start with a
:class:`ModelLoadError` naming the package and the fix, not on the first frame.
"""

from __future__ import annotations

__all__ = ["MIN_OPSET", "ModelSession", "session_options"]

import logging
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_node.runtime.errors import InferenceError, ModelLoadError
from edge_node.runtime.onnxinfo import OnnxFormatError, read_opsets
from pipeline.modelpkg import ImageInput, ModelPackage, SensorInput

logger = logging.getLogger(__name__)

#: Oldest default-domain opset onnxruntime still runs.
MIN_OPSET = 7

Dim = int | str | None


def session_options(threads: int = 1, *, spin: bool = False) -> ort.SessionOptions:
    """Session options for low-latency inference on one (or a few) cores.

    Args:
        threads: Intra-op threads. 1 runs every kernel on the calling thread, which
            is the fastest for small models and leaves the other cores to capture.
        spin: Let intra-op workers busy-wait between kernels. It shaves tens of
            microseconds per run with ``threads > 1`` but burns a core, so it is
            off by default on shared edge CPUs; it has no effect with one thread.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _expected_input(spec: ImageInput | SensorInput) -> tuple[int, ...]:
    if isinstance(spec, SensorInput):
        return (1, len(spec.channels), spec.window)
    if spec.layout == "nchw":
        return (1, spec.channels, spec.height, spec.width)
    return (1, spec.height, spec.width, spec.channels)


def _fmt(shape: list[Dim] | tuple[Dim, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


class ModelSession:
    """An onnxruntime session for one model package, with load checks and warm-up.

    Args:
        package: The checked model package.
        threads: Intra-op threads (default 1).
        spin: Busy-wait in the intra-op pool (see :func:`session_options`).
        warmup: Runs on a zero input right after loading, so the first real
            frame does not pay for allocations and kernel selection.

    Raises:
        ModelLoadError: the file is corrupt, its opset is not supported here, or
            its input/output does not match the manifest.
    """

    def __init__(
        self, package: ModelPackage, *, threads: int = 1, spin: bool = False, warmup: int = 3
    ) -> None:
        if threads < 1:
            raise ModelLoadError(
                f"threads must be >= 1, got {threads}",
                where=str(package.path),
                hint="set the model's threads to 1 or more",
            )
        self.package = package
        self.manifest = package.manifest
        self.where = str(package.onnx_path)
        self.opset = self._check_opset()
        self._session = self._create(threads, spin)
        self.input_name, self.input_shape = self._check_input()
        self.output_name, self.output_shape = self._check_output()
        self.feed_shape = _expected_input(self.manifest.input)
        self.last_ms = 0.0
        self.warmup(warmup)
        logger.info(
            "loaded model %s %s (%s, opset %d) input %s %s output %s %s threads=%d",
            self.manifest.name,
            self.manifest.version,
            self.manifest.precision,
            self.opset,
            self.input_name,
            _fmt(self.input_shape),
            self.output_name,
            _fmt(self.output_shape),
            threads,
        )

    # --- load checks ----------------------------------------------------------------
    def _error(self, message: str, hint: str) -> ModelLoadError:
        return ModelLoadError(message, where=self.where, hint=hint)

    def _check_opset(self) -> int:
        try:
            opsets = read_opsets(self.package.onnx_path.read_bytes())
        except OSError as exc:
            raise self._error(f"cannot read the ONNX file: {exc}", "restore the package") from exc
        except OnnxFormatError as exc:
            raise self._error(
                f"not a valid ONNX model ({exc})",
                "the file is corrupt or not ONNX; re-export or restore the package",
            ) from exc
        opset = opsets.get("")
        if opset is None:
            raise self._error(
                "the model imports no default-domain (ai.onnx) opset",
                "export the model with a standard opset (e.g. torch.onnx.export opset_version=17)",
            )
        if opset < MIN_OPSET:
            raise self._error(
                f"opset {opset} is older than onnxruntime supports (>= {MIN_OPSET})",
                "convert the model with onnx.version_converter to opset 13 or newer",
            )
        if opset != self.manifest.opset:
            raise self._error(
                f"the file uses opset {opset}, the manifest says {self.manifest.opset}",
                "rebuild the manifest from the file (edgeloop models export/quantize)",
            )
        return opset

    def _create(self, threads: int, spin: bool) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(
                str(self.package.onnx_path),
                sess_options=session_options(threads, spin=spin),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:
            text = str(exc)
            if "opset" in text.lower():
                raise self._error(
                    f"onnxruntime {ort.__version__} does not support opset {self.opset}: "
                    f"{text.splitlines()[-1][:300]}",
                    "export the model at an older opset, or upgrade onnxruntime on this node",
                ) from exc
            raise self._error(
                f"onnxruntime cannot load the model: {text[:500]}",
                "check that the file is a complete ONNX model and uses only standard operators",
            ) from exc

    def _check_input(self) -> tuple[str, tuple[Dim, ...]]:
        spec = self.manifest.input
        inputs = {i.name: i for i in self._session.get_inputs()}
        if spec.name not in inputs:
            raise self._error(
                f"the model has no input {spec.name!r} (inputs: {sorted(inputs)})",
                "set input.name in the manifest to the model's input name",
            )
        arg = inputs[spec.name]
        if len(inputs) != 1:
            raise self._error(
                f"the model has {len(inputs)} inputs {sorted(inputs)}; the edge feeds one",
                "export the model with a single input tensor",
            )
        if arg.type != "tensor(float)":
            raise self._error(
                f"input {spec.name!r} is {arg.type}, the runtime feeds tensor(float)",
                "keep a float32 input (static INT8 quantization keeps it float)",
            )
        shape: tuple[Dim, ...] = tuple(arg.shape)
        want = _expected_input(spec)
        if len(shape) != len(want):
            raise self._error(
                f"input {spec.name!r} has rank {len(shape)} {_fmt(shape)}, "
                f"the manifest input spec needs {_fmt(want)}",
                "fix input layout/size in the manifest, or re-export the model",
            )
        for axis, (have, need) in enumerate(zip(shape, want, strict=True)):
            if isinstance(have, int) and have > 0 and have != need:
                raise self._error(
                    f"input {spec.name!r} has shape {_fmt(shape)}, the manifest input spec "
                    f"needs {_fmt(want)} (axis {axis}: {have} != {need})",
                    "fix input width/height/layout/color (or window/channels) in the manifest, "
                    "or re-export the model at that size; only the batch axis may be dynamic",
                )
        return arg.name, shape

    def _check_output(self) -> tuple[str, tuple[Dim, ...]]:
        m = self.manifest
        outputs = {o.name: o for o in self._session.get_outputs()}
        if m.output not in outputs:
            raise self._error(
                f"the model has no output {m.output!r} (outputs: {sorted(outputs)})",
                "set output in the manifest to the model's output name",
            )
        shape: tuple[Dim, ...] = tuple(outputs[m.output].shape)
        if m.task == "classify":
            ok = len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] == len(m.labels))
            if not ok:
                raise self._error(
                    f"output {m.output!r} has shape {_fmt(shape)}, "
                    f"but the manifest lists {len(m.labels)} labels: (1, {len(m.labels)}) expected",
                    "make labels match the model's classes, in output order",
                )
        else:
            fixed = [d for d in shape[1:] if isinstance(d, int)]
            if len(shape) not in (1, 2) or any(d != 1 for d in fixed):
                raise self._error(
                    f"output {m.output!r} has shape {_fmt(shape)}, an anomaly score must be "
                    "(1,) or (1, 1)",
                    "export the model to return one score per window",
                )
        return m.output, shape

    # --- running --------------------------------------------------------------------
    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Run one input; returns the output as float64, batch axis kept.

        Raises:
            InferenceError: onnxruntime failed, or the output holds NaN or inf.
        """
        start = time.perf_counter_ns()
        try:
            out: list[Any] = self._session.run([self.output_name], {self.input_name: tensor})
        except Exception as exc:
            raise InferenceError(
                f"onnxruntime failed: {str(exc)[:300]}",
                where=self.where,
                hint="the input tensor does not fit the model; check the manifest input spec",
            ) from exc
        self.last_ms = (time.perf_counter_ns() - start) / 1e6
        result = np.asarray(out[0], dtype=np.float64)
        if not np.all(np.isfinite(result)):
            raise InferenceError(
                "the model output holds NaN or inf", where=self.where, hint="check the model"
            )
        return result

    def warmup(self, n: int = 3) -> None:
        """Run ``n`` times on a zero input of the manifest's shape."""
        zeros = np.zeros(self.feed_shape, dtype=np.float32)
        for _ in range(n):
            self.run(zeros)
