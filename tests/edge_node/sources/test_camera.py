"""The camera source on real video files written with OpenCV, and on streams that fail."""

from __future__ import annotations

import http.server
import itertools
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge_node.sources.base import Frame, SourceError
from edge_node.sources.camera import Backoff, CameraConfig, CameraSource, parse_uri
from tests.edge_node.sources.helpers import read_all as _read_all

SIZE = (64, 48)


def write_video(path: Path, frames: int, fps: float = 20.0) -> Path:
    """An MJPG AVI whose frame i is a flat grey of level 10 * i (readable back in order)."""
    tmp = path.with_name(f".{path.name}.tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((SIZE[1], SIZE[0], 3), 10 * i, np.uint8))
    writer.release()
    os.replace(tmp, path)  # appears at once, complete
    return path


def level(frame: Frame) -> int:
    return round(float(frame.image.mean()) / 10)


@pytest.fixture
def camera() -> Iterator[Callable[..., CameraSource]]:
    made: list[CameraSource] = []

    def make(**fields: object) -> CameraSource:
        src = CameraSource(CameraConfig.model_validate({"name": "cam0", **fields}))
        src.open()
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


def read_all(src: CameraSource, limit: int = 1000) -> list[Frame]:
    return _read_all(src, limit, timeout=5)


def read_until(src: CameraSource, done: Callable[[], bool], timeout: float = 10) -> list[Frame]:
    """Read (each call bounded) until ``done()``; fail if it never is."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out: state={src.state} errors={src.errors}"
        frame = src.read(timeout=0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MjpegServer:
    """A local HTTP MJPEG stream (what IP cameras serve): frame i is a flat grey of level i.

    Each connection gets ``per_connection`` frames, ``interval_s`` apart, then is closed.
    """

    def __init__(self, per_connection: int, interval_s: float = 0.01) -> None:
        self.sent = 0
        self.connections = 0
        self.cond = threading.Condition()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.cond:
                    server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(per_connection):
                        with server.cond:
                            level = server.sent % 256
                        jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), level, np.uint8))[1]
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.size}"
                        self.wfile.write(head.encode() + b"\r\n\r\n" + jpeg.tobytes() + b"\r\n")
                        self.wfile.flush()
                        with server.cond:
                            server.sent += 1
                            server.cond.notify_all()
                        time.sleep(interval_s)  # the camera's frame rate
                except OSError:
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/x.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_sent(self, count: int, timeout: float = 10) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.sent >= count, timeout), self.sent

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg() -> Iterator[Callable[..., MjpegServer]]:
    made: list[MjpegServer] = []

    def make(per_connection: int, interval_s: float = 0.01) -> MjpegServer:
        made.append(MjpegServer(per_connection, interval_s))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_file_delivers_every_frame_in_order_then_is_exhausted(tmp_path, camera):
    src = camera(uri=str(write_video(tmp_path / "v.avi", 12)))
    before = time.time_ns()
    frames = read_all(src)
    assert [level(f) for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(before <= f.ts_ns <= time.time_ns() for f in frames)
    assert all(a.mono_ns <= b.mono_ns for a, b in itertools.pairwise(frames))
    assert src.exhausted
    assert src.state == "ok"
    assert src.errors == {}
    assert src.read(timeout=0.01) is None


def test_fps_below_the_file_rate_drops_frames_and_paces(tmp_path, camera):
    src = camera(uri=str(write_video(tmp_path / "v.avi", 20, fps=200)), fps=100)
    start = time.monotonic()
    frames = read_all(src)
    elapsed = time.monotonic() - start
    assert [level(f) for f in frames] == list(range(0, 20, 2))
    assert [f.index for f in frames] == list(range(10))
    assert elapsed >= 9 / 100 * 0.9  # paced: 10 frames take at least 9 periods


def test_loop_starts_the_file_again_in_order(tmp_path, camera):
    src = camera(uri=str(write_video(tmp_path / "v.avi", 5)), loop=True)
    frames: list[Frame] = []
    while len(frames) < 12:
        frame = src.read(timeout=5)
        assert frame is not None
        frames.append(frame)
    assert [level(f) for f in frames] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert [f.index for f in frames] == list(range(12))
    assert not src.exhausted
    assert src.errors == {}


def test_bogus_file_is_lost_and_retried_until_a_video_appears(tmp_path, camera):
    path = tmp_path / "later.avi"
    path.write_bytes(b"not a video")
    src = camera(uri=str(path), reconnect_min_s=0.01, reconnect_max_s=0.05)
    read_until(src, lambda: src.errors.get("reconnect", 0) >= 2)
    assert src.state == "lost"
    assert not src.exhausted
    write_video(path, 3)
    frames = read_until(src, lambda: src.exhausted)
    assert [level(f) for f in frames] == [0, 1, 2]
    assert src.state == "ok"


def test_unreachable_stream_never_blocks_read_longer_than_its_timeout(camera):
    src = camera(
        uri=f"http://127.0.0.1:{closed_port()}/x.mjpg", reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    read_until(src, lambda: src.errors.get("reconnect", 0) >= 3)
    for _ in range(3):
        start = time.monotonic()
        assert src.read(timeout=0.2) is None
        assert time.monotonic() - start < 1.5
    assert src.state == "lost"
    assert not src.exhausted
    start = time.monotonic()
    src.close()
    assert time.monotonic() - start < 2


def grey(frame: Frame) -> int:
    return round(float(frame.image.mean()))


def test_live_stream_hands_a_slow_consumer_the_newest_frame(camera, mjpeg):
    server = mjpeg(per_connection=250)
    src = camera(uri=server.url)
    first = src.read(timeout=10)
    assert first is not None
    assert src.state == "ok"
    server.wait_sent(grey(first) + 30)  # the consumer is busy while 30 more arrive
    newest = src.read(timeout=10)
    assert newest is not None
    assert grey(newest) >= grey(first) + 25
    # Frames replaced before anyone read them are counted, and leave a gap in the index.
    assert src.dropped >= 20
    assert first.index + 1 + 20 <= newest.index <= first.index + 1 + src.dropped
    assert not src.exhausted


def test_live_stream_that_drops_is_reconnected_and_flows_again(camera, mjpeg):
    server = mjpeg(per_connection=4)
    # A backoff of 0.1-0.2 s keeps "lost" visible to a reader polling every 0.05 s.
    src = camera(uri=server.url, reconnect_min_s=0.2, reconnect_max_s=0.2)
    states: set[str] = set()

    def reconnected_and_flowing() -> bool:
        states.add(src.state)
        return server.connections >= 3 and src.state == "ok" and len(frames) > 4

    frames: list[Frame] = []
    deadline = time.monotonic() + 20
    while not reconnected_and_flowing():
        assert time.monotonic() < deadline, (states, src.errors, server.connections)
        frame = src.read(timeout=0.05)
        if frame is not None:
            frames.append(frame)
    assert "lost" in states
    assert src.errors.get("reconnect", 0) >= 2
    assert [f.index for f in frames] == list(range(len(frames)))


def test_live_source_keeps_only_the_newest_frame():
    src = CameraSource(CameraConfig(name="cam0", uri="rtsp://127.0.0.1/x"))
    assert src.live
    for i in range(3):
        src._deliver(np.full((4, 4, 3), 10 * i, np.uint8), ts_ns=i, mono_ns=i)
    frame = src.read(timeout=0)
    assert frame is not None
    assert level(frame) == 2
    assert frame.index == 2
    assert src.dropped == 2
    assert src.read(timeout=0) is None


def test_open_refuses_a_missing_file(tmp_path):
    src = CameraSource(CameraConfig(name="cam0", uri=str(tmp_path / "nope.avi")))
    with pytest.raises(SourceError, match="not found") as info:
        src.open()
    assert info.value.hint
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (0, ("device", 0)),
        ("2", ("device", 2)),
        ("/dev/video7", ("device", "/dev/video7")),
        ("rtsp://cam.local:554/stream", ("url", "rtsp://cam.local:554/stream")),
        ("HTTPS://cam/x.mjpg", ("url", "HTTPS://cam/x.mjpg")),
    ],
)
def test_parse_uri(uri, expected):
    assert parse_uri(uri) == expected


@pytest.mark.parametrize("uri", ["ftp://cam/x", "file:///tmp/x.avi", -1, " "])
def test_config_rejects_bad_uris(uri):
    with pytest.raises(ValidationError, match=r"uri|scheme|negative|empty"):
        CameraConfig(name="cam0", uri=uri)


def test_config_rejects_half_a_resolution_and_inverted_backoff():
    with pytest.raises(ValidationError, match="width and height"):
        CameraConfig(name="c", uri=0, width=640)
    with pytest.raises(ValidationError, match="reconnect_max_s"):
        CameraConfig(name="c", uri=0, reconnect_min_s=5, reconnect_max_s=1)


def test_as_bgr_converts_or_rejects():
    gray = np.zeros((4, 5), np.uint8)
    bgra = np.zeros((4, 5, 4), np.uint8)
    assert CameraSource._as_bgr(gray).shape == (4, 5, 3)
    assert CameraSource._as_bgr(bgra).shape == (4, 5, 3)
    assert CameraSource._as_bgr(np.zeros((0, 0, 3), np.uint8)) is None
    assert CameraSource._as_bgr(np.zeros((4, 5, 3), np.uint16)) is None
    assert CameraSource._as_bgr(None) is None


def test_backoff_doubles_with_jitter_up_to_its_cap():
    backoff = Backoff(0.5, 4)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 4, 4], strict=True):
        assert base * 0.5 <= delay <= base
    backoff.reset()
    assert backoff.next_delay() <= 0.5
