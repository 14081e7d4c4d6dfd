"""Small real JPEG frames (drawn with OpenCV) and their frame metadata."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from cloud_stream.worker.records import Record
from pipeline.schemas import FrameMetaV1, ModelRef
from pipeline.schemas.properties import to_properties

NS = 1_000_000_000
T0 = 1_700_000_000 * NS

#: Headers the bridge adds beside the frame metadata.
TRACE_HEADERS = [
    ("content-type", b"image/jpeg"),
    ("mqtt.topic", b"edgeloop/v1/plant-a/cam-01/frame"),
    ("edge.ts", b"1700000000000000000"),
    ("bridge.ts", b"1700000000000000001"),
]


def jpeg(seed: int, size: int = 320) -> bytes:
    """A part-like picture: a grey belt with a bright disc and, for odd seeds, a dark scratch."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 90, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    c = size // 2
    cv2.circle(img, (c, c), size // 3, (200, 200, 210), -1)
    if seed % 2:
        cv2.line(img, (c - 40, c - 30), (c + 45, c + 35), (20, 20, 20), 4)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def frame_meta(data: bytes, seq: int = 1, size: int = 320, **fields: Any) -> FrameMetaV1:
    """Metadata of a frame of cam-01 matching ``data``."""
    base: dict[str, Any] = {
        "id": f"f{seq:010d}",
        "site": "plant-a",
        "device": "cam-01",
        "seq": seq,
        "ts": T0 + seq * NS,
        "model": ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32),
        "source": "cam0",
        "line": "line1",
        "result_id": f"r{seq:010d}",
        "reason": "uncertain",
        "label": "ok",
        "score": 0.55,
        "width": size,
        "height": size,
        "size": len(data),
        "phash": "0123456789abcdef",
    }
    base.update(fields)
    return FrameMetaV1(**base)


def frame_headers(meta: FrameMetaV1, *, trace: bool = True) -> list[tuple[str, bytes]]:
    """Kafka headers of a frame record, as the bridge writes them."""
    pairs = [(k, v.encode()) for k, v in to_properties(meta)]
    return [*TRACE_HEADERS, *pairs] if trace else pairs


def frame_record(data: bytes, meta: FrameMetaV1, *, offset: int = 0, headers: Any = None) -> Record:
    """A record of ``edgeloop.frames``."""
    return Record(
        "edgeloop.frames",
        0,
        offset,
        meta.device.encode(),
        data,
        tuple(frame_headers(meta) if headers is None else headers),
    )
