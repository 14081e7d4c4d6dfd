"""Frames from the conveyor simulator and the built-in teacher, shared by the slow-path tests."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from cloud_stream.slowpath import Teacher
from edge_node.sources.conveyor_scene import ConveyorScene
from pipeline.modelpkg import builtin_package


@dataclass(frozen=True)
class Shot:
    """One simulated frame: its JPEG bytes, the decoded image and the true label."""

    jpeg: bytes
    image: np.ndarray
    label: str


@pytest.fixture(scope="session")
def shots() -> list[Shot]:
    scene = ConveyorScene(320, seed=21)
    out = []
    for i in range(24):
        rendered = scene.render(i)
        ok, buf = cv2.imencode(".jpg", rendered.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        jpeg = buf.tobytes()
        out.append(Shot(jpeg, cv2.imdecode(buf, cv2.IMREAD_COLOR), rendered.label))
    return out


@pytest.fixture(scope="session")
def teacher() -> Teacher:
    return Teacher(builtin_package("conveyor-teacher"), threads=1, batch_size=8)
