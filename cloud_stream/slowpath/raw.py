"""The benchmark's baseline: the plain teacher loop a person would write.

``edgeloop bench cloud`` divides the slow path's frames per second by this figure
(``slowpath_ratio``), so it must do the same work (decode, the same preprocessing,
batched inference) and nothing else: no checks, no bookkeeping, no messages.
"""

from __future__ import annotations

__all__ = ["raw_teacher_frames_per_s"]

import time

import numpy as np

from cloud_stream.training.calibrate import session
from cloud_stream.training.imagefolder import prepare, to_input
from pipeline.modelpkg import ImageInput, ModelPackage


def raw_teacher_frames_per_s(
    package: ModelPackage, jpegs: list[bytes], batch_size: int, *, threads: int = 0
) -> float:
    """Frames per second of decode + preprocess + ``session.run`` on stacked batches.

    Args:
        package: The teacher package (an image classifier).
        jpegs: Encoded frames; all are processed once, after one warm-up run.
        batch_size: Frames per ``session.run``.
        threads: onnxruntime intra-op threads (0: every core), as the teacher's.
    """
    import cv2

    spec = package.manifest.input
    assert isinstance(spec, ImageInput)
    output = package.manifest.output
    sess = session(package.onnx_path, threads=threads)
    blank = np.zeros((1, spec.height, spec.width, spec.channels), np.uint8)
    sess.run([output], {spec.name: to_input(blank, spec)})
    t0 = time.perf_counter()
    for start in range(0, len(jpegs), batch_size):
        # No None check: the baseline assumes good frames, as a plain loop would.
        images = [
            prepare(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), spec)  # type: ignore[arg-type]
            for b in jpegs[start : start + batch_size]
        ]
        sess.run([output], {spec.name: to_input(np.stack(images), spec)})
    return len(jpegs) / (time.perf_counter() - t0)
