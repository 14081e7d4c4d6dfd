"""The folder source on real image files: order, labels, bad files, loop, watch, pacing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge_node.sources.base import Frame, SourceError
from edge_node.sources.folder import FolderConfig, FolderSource
from tests.edge_node.sources.helpers import read_all as _read_all


def write_image(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 10, 3), value, np.uint8))
    return path


def value(frame: Frame) -> int:
    return round(float(frame.image.mean()))


@pytest.fixture
def folder() -> Iterator[Callable[..., FolderSource]]:
    made: list[FolderSource] = []

    def make(path: Path, **fields: object) -> FolderSource:
        src = FolderSource(FolderConfig.model_validate({"name": "f0", "path": str(path), **fields}))
        src.open()
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


def read_all(src: FolderSource, limit: int = 100) -> list[Frame]:
    return _read_all(src, limit, timeout=1)


def test_reads_images_in_name_order_then_ends(tmp_path, folder):
    for name, v in [("b.png", 20), ("a.png", 10), ("c.jpg", 30)]:
        write_image(tmp_path / name, v)
    src = folder(tmp_path)
    frames = read_all(src)
    assert [value(f) for f in frames] == [10, 20, 30]
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.truth is None and f.image.shape == (8, 10, 3) for f in frames)
    assert src.exhausted
    assert src.read(timeout=0) is None


def test_corrupt_and_non_image_files_are_counted_and_skipped(tmp_path, folder, caplog):
    write_image(tmp_path / "a.png", 10)
    (tmp_path / "b.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "c.txt").write_text("notes")
    (tmp_path / "d.png").write_bytes(b"")
    write_image(tmp_path / "e.png", 50)
    src = folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="edge_node.sources.folder"):
        frames = read_all(src)
    assert [value(f) for f in frames] == [10, 50]
    assert src.errors == {"unreadable": 3}
    # Rate-limited: the first bad file is named, the rest are held back.
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "b.png" in warnings[0]


def test_pattern_filters_files(tmp_path, folder):
    write_image(tmp_path / "a.png", 10)
    write_image(tmp_path / "b.jpg", 20)
    src = folder(tmp_path, pattern="*.jpg")
    assert [value(f) for f in read_all(src)] == [20]


def test_labelled_dirs_give_truth(tmp_path, folder):
    write_image(tmp_path / "ok" / "1.png", 10)
    write_image(tmp_path / "defect" / "2.png", 20)
    write_image(tmp_path / "ok" / "3.png", 30)
    write_image(tmp_path / "stray.png", 40)  # not in a label folder: not part of the set
    src = folder(tmp_path, labels_from_dirs=True)
    frames = read_all(src)
    assert [(f.truth, value(f)) for f in frames] == [("defect", 20), ("ok", 10), ("ok", 30)]


def test_recursive_labels_use_the_first_folder_level(tmp_path, folder):
    write_image(tmp_path / "scratch" / "cam1" / "1.png", 10)
    write_image(tmp_path / "top.png", 20)
    src = folder(tmp_path, labels_from_dirs=True, recursive=True)
    frames = read_all(src)
    assert [(f.truth, value(f)) for f in frames] == [("scratch", 10), (None, 20)]


def test_loop_starts_again(tmp_path, folder):
    write_image(tmp_path / "a.png", 10)
    write_image(tmp_path / "b.png", 20)
    src = folder(tmp_path, loop=True)
    frames = [src.read(timeout=1) for _ in range(5)]
    assert [value(f) for f in frames if f is not None] == [10, 20, 10, 20, 10]
    assert not src.exhausted


def test_loop_over_only_unreadable_files_ends_instead_of_spinning(tmp_path, folder):
    (tmp_path / "a.png").write_bytes(b"junk")
    src = folder(tmp_path, loop=True)
    assert read_all(src) == []
    assert src.exhausted
    assert src.errors["unreadable"] == 1


def test_watch_picks_up_new_files(tmp_path, folder):
    write_image(tmp_path / "a.png", 10)
    src = folder(tmp_path, watch=True, poll_s=0.02, settle_s=0)
    first = src.read(timeout=1)
    assert first is not None
    assert value(first) == 10
    start = time.monotonic()
    assert src.read(timeout=0.1) is None
    assert time.monotonic() - start < 1
    write_image(tmp_path / "b.png", 20)
    second = src.read(timeout=5)
    assert second is not None
    assert value(second) == 20
    assert second.index == 1
    assert not src.exhausted


def test_watch_waits_for_a_file_to_settle(tmp_path, folder):
    src = folder(tmp_path, watch=True, poll_s=0.02, settle_s=0.2)
    write_image(tmp_path / "a.png", 10)
    frame = src.read(timeout=5)
    assert frame is not None
    assert value(frame) == 10
    assert time.time() - (tmp_path / "a.png").stat().st_mtime >= 0.2


def test_fps_paces_delivery(tmp_path, folder):
    for i in range(5):
        write_image(tmp_path / f"{i}.png", 10 * i)
    src = folder(tmp_path, fps=50)
    start = time.monotonic()
    frames = read_all(src)
    assert len(frames) == 5
    assert time.monotonic() - start >= 4 / 50 * 0.9
    # A read whose timeout ends before the next slot returns None in time.
    src2 = folder(tmp_path, fps=1)
    assert src2.read(timeout=1) is not None
    start = time.monotonic()
    assert src2.read(timeout=0.05) is None
    assert time.monotonic() - start < 0.5


def test_missing_folder_is_a_source_error(tmp_path):
    src = FolderSource(FolderConfig(name="f0", path=str(tmp_path / "nope")))
    with pytest.raises(SourceError, match="not found") as info:
        src.open()
    assert info.value.hint


def test_empty_folder_is_an_error_unless_watched(tmp_path, folder):
    with pytest.raises(SourceError, match="no files match"):
        FolderSource(FolderConfig(name="f0", path=str(tmp_path))).open()
    src = folder(tmp_path, watch=True)
    assert src.read(timeout=0) is None
    assert not src.exhausted


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"loop": True, "watch": True}, "loop or watch"),
        ({"pattern": "sub/*.png"}, "file names only"),
        ({"fps": -1}, "greater than or equal"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_config_rejects(tmp_path, fields, match):
    with pytest.raises(ValidationError, match=match):
        FolderConfig.model_validate({"name": "f0", "path": str(tmp_path), **fields})
