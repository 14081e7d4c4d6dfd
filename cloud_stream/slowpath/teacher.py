"""The FP32 teacher: a second opinion on uploaded frames, micro-batched with onnxruntime.

Frames are decoded with OpenCV and turned into model input by exactly the steps
the model was trained and evaluated with (:func:`cloud_stream.training.imagefolder.prepare`
and :func:`~cloud_stream.training.imagefolder.to_input`, the same as the edge
runtime's), so the teacher sees what the edge saw.
"""

from __future__ import annotations

__all__ = ["CorruptFrame", "Teacher", "TeacherBatch", "TeacherPrediction"]

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_stream.training.calibrate import session
from cloud_stream.training.imagefolder import prepare, to_input
from cloud_stream.training.score_reference import as_probs
from pipeline.errors import EdgeloopError
from pipeline.modelpkg import ImageInput, ModelPackage, ModelPackageError
from pipeline.schemas.base import ModelRef

logger = logging.getLogger(__name__)

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"


class CorruptFrame(EdgeloopError):  # noqa: N818 (the name the slow path's callers use)
    """Frame bytes that cannot be a usable camera frame.

    Attributes:
        reason: A short, stable code for the dead-letter queue: ``empty``,
            ``not_jpeg``, ``truncated``, ``undecodable`` or ``wrong_size``.
    """

    def __init__(
        self, reason: str, message: str, *, where: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TeacherPrediction:
    """The teacher's opinion on one image.

    Attributes:
        label: Top-1 label.
        score: Top-1 probability.
        probs: Probability of every label, in the model's label order.
    """

    label: str
    score: float
    probs: dict[str, float]


@dataclass(frozen=True, slots=True)
class TeacherBatch:
    """Predictions for a sequence of images, in input order.

    Attributes:
        predictions: One per image.
        probs: The same as an array (N, classes), float64.
        latency_ms: Wall time of the whole call: preprocessing and every inference run.
        runs: How many inference runs the images took (micro-batches).
    """

    predictions: tuple[TeacherPrediction, ...]
    probs: np.ndarray
    latency_ms: float
    runs: int

    def __len__(self) -> int:
        return len(self.predictions)

    def __iter__(self) -> Iterator[TeacherPrediction]:
        return iter(self.predictions)

    def __getitem__(self, index: int) -> TeacherPrediction:
        return self.predictions[index]


def _fail(package: ModelPackage, message: str, hint: str) -> ModelPackageError:
    return ModelPackageError(message, where=str(package.onnx_path), hint=hint)


class Teacher:
    """An FP32 image classifier for the cloud, checked against its manifest at load.

    Args:
        package: A classify package (e.g. ``builtin_package("conveyor-teacher")``).
        threads: onnxruntime intra-op threads; 0 lets onnxruntime use every core.
        batch_size: Images per inference run. A graph with a fixed batch dimension
            runs that many at a time instead (padding the last run).

    Raises:
        ModelPackageError: not a classify package, or the ONNX graph does not match
            the manifest (input name, layout or size, output name, class count).
    """

    def __init__(self, package: ModelPackage, *, threads: int = 0, batch_size: int = 16) -> None:
        m = package.manifest
        if m.task != "classify" or not isinstance(m.input, ImageInput):
            raise ModelPackageError(
                f"{m.name} is a {m.task} model; the teacher needs an image classifier",
                where=str(package.path),
                hint="configure a classify package as teacher, e.g. conveyor-teacher",
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.package = package
        self.spec: ImageInput = m.input
        self.labels: tuple[str, ...] = m.labels
        self._kind = m.output_kind
        self._output = m.output
        self._sess = session(package.onnx_path, threads=threads)
        self._fixed_batch = self._check_graph()
        self.batch_size = self._fixed_batch or batch_size
        self._warm_up()
        logger.info(
            "teacher %s %s loaded: %d labels, batch %d%s",
            m.name,
            m.version,
            len(self.labels),
            self.batch_size,
            " (fixed by the graph)" if self._fixed_batch else "",
        )

    @property
    def ref(self) -> ModelRef:
        """The identity verdicts carry."""
        return self.package.ref

    def _check_graph(self) -> int | None:
        """Check the graph against the manifest; return its fixed batch size, if it has one."""
        spec, pkg = self.spec, self.package
        inputs = {i.name: i for i in self._sess.get_inputs()}
        if spec.name not in inputs:
            raise _fail(
                pkg,
                f"the graph has no input {spec.name!r} (it has {sorted(inputs)})",
                "fix input.name in the manifest",
            )
        node = inputs[spec.name]
        if node.type != "tensor(float)":
            raise _fail(pkg, f"input {spec.name!r} is {node.type}, not float32", "export FP32")
        want = (
            (spec.channels, spec.height, spec.width)
            if spec.layout == "nchw"
            else (spec.height, spec.width, spec.channels)
        )
        shape = list(node.shape)
        if len(shape) != 4 or any(
            isinstance(d, int) and d != w for d, w in zip(shape[1:], want, strict=False)
        ):
            raise _fail(
                pkg,
                f"input {spec.name!r} has shape {shape}; the manifest ({spec.layout}) "
                f"needs [batch, {', '.join(map(str, want))}]",
                "fix input width/height/color/layout in the manifest",
            )
        outputs = [o.name for o in self._sess.get_outputs()]
        if self._output not in outputs:
            raise _fail(
                pkg,
                f"the graph has no output {self._output!r} (it has {outputs})",
                "fix output in the manifest",
            )
        batch = shape[0]
        return batch if isinstance(batch, int) and batch > 0 else None

    def _warm_up(self) -> None:
        """One run on a blank input: allocates buffers and checks the class count."""
        s = self.spec
        blank = np.zeros((self._fixed_batch or 1, s.height, s.width, s.channels), np.uint8)
        out = np.asarray(self._run(to_input(blank, s)))
        if out.ndim != 2 or out.shape[1] != len(self.labels):
            raise _fail(
                self.package,
                f"output {self._output!r} has shape {list(out.shape)}; the manifest has "
                f"{len(self.labels)} labels",
                "the labels in the manifest must match the model's classes, in order",
            )

    def _run(self, x: np.ndarray) -> Any:
        return self._sess.run([self._output], {self.spec.name: x})[0]

    def decode(
        self, jpeg: bytes, *, width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """Decode JPEG bytes to a BGR uint8 image (H, W, 3).

        Args:
            jpeg: The encoded frame.
            width: Expected width (from the frame metadata), checked when given.
            height: Expected height, checked when given.

        Raises:
            CorruptFrame: empty, not a JPEG, truncated, undecodable, or of another size.
        """
        import cv2

        hint = "the device sent a damaged frame; check its camera and encoder"
        if not jpeg:
            raise CorruptFrame("empty", "empty frame (0 bytes)", hint=hint)
        if not jpeg.startswith(_SOI):
            raise CorruptFrame("not_jpeg", f"not a JPEG (starts with {jpeg[:4].hex()})", hint=hint)
        if _EOI not in jpeg[-16:]:
            raise CorruptFrame(
                "truncated", f"JPEG has no end marker ({len(jpeg)} bytes; cut off?)", hint=hint
            )
        try:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise CorruptFrame("undecodable", f"JPEG cannot be decoded: {exc}", hint=hint) from exc
        if image is None or image.size == 0:
            raise CorruptFrame(
                "undecodable", f"JPEG cannot be decoded ({len(jpeg)} bytes)", hint=hint
            )
        h, w = image.shape[:2]
        if (width is not None and w != width) or (height is not None and h != height):
            raise CorruptFrame(
                "wrong_size",
                f"frame is {w}x{h}, its metadata says {width}x{height}",
                hint="the metadata and the image disagree; check the device's encoder",
            )
        return np.asarray(image)

    def classify(self, images: Sequence[np.ndarray]) -> TeacherBatch:
        """Classify BGR uint8 images (H, W, 3) of any size, ``batch_size`` per inference run.

        Raises:
            ValueError: an image is not an (H, W, 3) uint8 array.
        """
        t0 = time.perf_counter()
        s = self.spec
        n = len(images)
        x8 = np.empty((n, s.height, s.width, s.channels), np.uint8)
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"image {i}: need a BGR uint8 array (H, W, 3), got {image.dtype} {image.shape}"
                )
            x8[i] = prepare(image, s)
        step = self.batch_size
        outs: list[np.ndarray] = []
        for start in range(0, n, step):
            x = to_input(x8[start : start + step], s)
            short = step - len(x) if self._fixed_batch else 0
            if short:
                x = np.concatenate([x, np.zeros((short, *x.shape[1:]), x.dtype)])
            outs.append(np.asarray(self._run(x))[: step - short])
        probs = (
            as_probs(np.concatenate(outs), self._kind) if outs else np.zeros((0, len(self.labels)))
        )
        probs = np.clip(probs, 0.0, 1.0)
        top = probs.argmax(axis=1)
        labels = self.labels
        predictions = tuple(
            TeacherPrediction(
                label=labels[k],
                score=float(row[k]),
                probs=dict(zip(labels, row.tolist(), strict=True)),
            )
            for k, row in zip(top.tolist(), probs, strict=True)
        )
        latency_ms = (time.perf_counter() - t0) * 1000.0
        return TeacherBatch(
            predictions=predictions, probs=probs, latency_ms=latency_ms, runs=len(outs)
        )
