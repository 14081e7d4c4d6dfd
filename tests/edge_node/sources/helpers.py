"""Helpers shared by the source tests."""

from __future__ import annotations

from edge_node.sources.base import Frame, Source


def read_all(src: Source, limit: int = 1000, timeout: float = 5.0) -> list[Frame]:
    """Read frames until the source is exhausted or ``limit`` frames arrived."""
    frames: list[Frame] = []
    while not src.exhausted and len(frames) < limit:
        item = src.read(timeout=timeout)
        if isinstance(item, Frame):
            frames.append(item)
    return frames
