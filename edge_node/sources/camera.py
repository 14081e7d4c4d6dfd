"""The ``camera`` source: a USB/V4L2 device, a video file or an RTSP/HTTP stream via OpenCV.

Capture runs in a background thread, so ``read()`` never blocks longer than its
timeout, not even while a network stream is being (re)opened. Live inputs
(devices and URLs) keep only the newest frame: a slow consumer always gets the
latest image, never a backlog. Files hand over every frame in order (the thread
waits for the consumer), unless ``fps`` asks for fewer.

A lost stream sets ``state = "lost"``; the thread closes the capture and
re-opens it with exponential backoff and jitter, counting each attempt as a
``reconnect`` error, and ``state`` returns to ``"ok"`` when frames flow again.
"""

from __future__ import annotations

__all__ = ["CameraConfig", "CameraSource", "parse_uri"]

import collections
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, model_validator

from edge_node.sources.base import Frame, Source, SourceConfig, SourceError, register

logger = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
UriKind = Literal["device", "file", "url"]
_INSTALL_HINT = "install the edge extra: pip install 'edgeloop[edge]'"


class CameraConfig(SourceConfig):
    """A camera, video file or network stream read with OpenCV."""

    type: Literal["camera"] = Field(default="camera", description="Source plugin key")
    uri: int | str = Field(
        description="Device index (0 = /dev/video0), video file path, or rtsp://, rtsps://, "
        "http:// or https:// URL"
    )
    fps: float = Field(
        default=0,
        ge=0,
        le=1000,
        description="Deliver at most this many frames per second (extra frames are dropped, "
        "files are paced); 0 = as delivered",
    )
    width: int | None = Field(
        default=None,
        ge=1,
        le=16384,
        description="Frame width to ask the device for (files and streams keep their own size)",
    )
    height: int | None = Field(
        default=None, ge=1, le=16384, description="Frame height to ask the device for"
    )
    loop: bool = Field(default=False, description="Start a video file again at its end")
    reconnect_min_s: float = Field(
        default=0.5, gt=0, le=60, description="First delay before re-opening a lost stream"
    )
    reconnect_max_s: float = Field(
        default=30, gt=0, le=3600, description="Largest delay between re-open attempts"
    )
    read_timeout_s: float = Field(
        default=10,
        gt=0,
        le=600,
        description="A live stream with no frame for this long counts as lost",
    )
    backend: Literal["any", "ffmpeg", "v4l2", "gstreamer"] = Field(
        default="any", description="OpenCV capture backend"
    )

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither")
        try:
            parse_uri(self.uri, check_exists=False)
        except SourceError as exc:
            raise ValueError(f"{exc.message}; {exc.hint}") from exc
        return self


def parse_uri(uri: int | str, *, check_exists: bool = True) -> tuple[UriKind, int | str]:
    """Classify a camera URI.

    Args:
        uri: Device index, a digit string (same), a ``/dev/...`` node, a file path or a
            stream URL.
        check_exists: Also require that a file path exists.

    Returns:
        The kind (``device``, ``file`` or ``url``) and the value to hand to OpenCV.

    Raises:
        SourceError: Negative index, unsupported URL scheme or missing file.
    """
    if isinstance(uri, str) and uri.strip().isdigit():
        uri = int(uri.strip())
    if isinstance(uri, int):
        if uri < 0:
            raise SourceError(f"device index {uri} is negative", hint="use 0 for /dev/video0")
        return "device", uri
    if not uri.strip():
        raise SourceError("camera uri is empty", hint="give a device index, file path or URL")
    scheme = urlsplit(uri).scheme.lower()
    if "://" in uri:
        if scheme not in URL_SCHEMES:
            raise SourceError(
                f"unsupported URL scheme {scheme!r}",
                where=uri,
                hint=f"use one of {', '.join(s + '://' for s in URL_SCHEMES)}",
            )
        return "url", uri
    path = Path(uri).expanduser()
    if path.parts[:2] == ("/", "dev"):
        # A device node such as /dev/video0 (V4L2 opens it by path); it may be plugged later.
        return "device", str(path)
    if check_exists and not path.is_file():
        raise SourceError(
            "video file not found",
            where=str(path),
            hint="check the path (relative paths start at the working directory)",
        )
    return "file", str(path)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SourceError("OpenCV is not installed", hint=_INSTALL_HINT) from exc
    return cv2


def _next_slot(due: float, now: float, period: float) -> float:
    """The next slot on a fixed grid; a consumer that fell behind restarts the grid."""
    due += period
    return due if due > now else now + period


class Backoff:
    """Exponential backoff with jitter: ``min * 2**n``, capped, then scaled by 0.5-1.0.

    Args:
        min_s: First delay.
        max_s: Largest delay.
    """

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base."""
        base = min(self.max_s, self.min_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return base * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from ``min_s`` (after a success)."""
        self.attempt = 0


@register(CameraConfig)
class CameraSource(Source):
    """Frames from OpenCV ``VideoCapture``; see the module docstring for the behaviour."""

    kind = "image"
    config: CameraConfig

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self.uri_kind, self._target = parse_uri(config.uri, check_exists=False)
        self.live = self.uri_kind != "file"
        #: Frames captured but replaced by a newer one before anyone read them (live only).
        self.dropped = 0
        self._cond = threading.Condition()
        self._buffer: collections.deque[Frame] = collections.deque()
        self._stop = threading.Event()
        self._ended = False
        self._thread: threading.Thread | None = None
        self._index = 0
        self._last_frame_mono = 0.0
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)

    # --- consumer side ----------------------------------------------------------------
    def open(self) -> None:
        """Validate the URI and start the capture thread.

        Raises:
            SourceError: A missing file, a bad URL scheme, or OpenCV not installed.
        """
        self.uri_kind, self._target = parse_uri(self.config.uri)
        _cv2()
        if self._thread is not None:
            return
        self._last_frame_mono = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame, or ``None`` after ``timeout`` seconds or at the end of a file."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._buffer and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._buffer:
                frame = self._buffer.popleft()
                self._cond.notify_all()
                return frame
        self._check_stall()
        return None

    def close(self) -> None:
        """Stop the capture thread and release the device; safe to call twice."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.config.read_timeout_s + 1)
            if thread.is_alive():
                logger.warning("camera %s: capture thread still blocked in OpenCV", self.name)

    @property
    def exhausted(self) -> bool:
        """True once a file ended (without ``loop``) and every frame was read."""
        with self._cond:
            return self._ended and not self._buffer

    def _check_stall(self) -> None:
        # cv2.read() may hang inside the thread; a quiet live stream is reported from here.
        quiet = time.monotonic() - self._last_frame_mono
        if self.live and self.state == "ok" and quiet > self.config.read_timeout_s:
            logger.warning("camera %s: no frame for %.1f s, stream lost", self.name, quiet)
            self.state = "lost"

    # --- capture thread ---------------------------------------------------------------
    def _run(self) -> None:
        retry = False
        while not self._stop.is_set():
            if retry:
                self.count_error("reconnect")
                delay = self._backoff.next_delay()
                logger.info("camera %s: re-opening in %.2f s", self.name, delay)
                if self._stop.wait(delay):
                    break
            cap = self._open_capture()
            if cap is None:
                self._lose("cannot open")
                retry = True
                continue
            try:
                reason = self._pump(cap)
            except Exception:
                logger.exception("camera %s: capture failed", self.name)
                reason = "capture error"
            finally:
                cap.release()
            if reason == "end":
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()
                return
            if reason == "stop":
                return
            # A looping file starts again at once; anything else is a lost stream.
            retry = reason != "loop"
            if retry:
                self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self.state != "lost":
            logger.warning("camera %s: stream lost (%s): %s", self.name, reason, self._target)
        self.state = "lost"

    def _open_capture(self) -> Any:
        cv2 = _cv2()
        api = {
            "any": cv2.CAP_ANY,
            "ffmpeg": cv2.CAP_FFMPEG,
            "v4l2": cv2.CAP_V4L2,
            "gstreamer": cv2.CAP_GSTREAMER,
        }[self.config.backend]
        timeout_ms = int(self.config.read_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms]
        params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        if self.config.width is not None and self.config.height is not None:
            params += [cv2.CAP_PROP_FRAME_WIDTH, self.config.width]
            params += [cv2.CAP_PROP_FRAME_HEIGHT, self.config.height]
        try:
            cap = cv2.VideoCapture(self._target, api, params)
        except cv2.error as exc:
            logger.debug("camera %s: VideoCapture raised %s", self.name, exc)
            return None
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _pump(self, cap: Any) -> str:
        """Read frames until the stream fails (returns why) or a file ends."""
        cv2 = _cv2()
        fps = self.config.fps
        native_fps = cap.get(cv2.CAP_PROP_FPS) if not self.live else 0.0
        period = 1.0 / fps if fps else 0.0
        next_video_s = 0.0  # files: keep frames by video time
        next_due = time.monotonic()  # live: keep frames by wall time; files: pacing
        position = 0
        while not self._stop.is_set():
            if not self.live and period:
                if self._stop.wait(max(0.0, next_due - time.monotonic())):
                    return "stop"
                if native_fps > 0:
                    # Skip (grab without decoding) frames that fps asks us to drop.
                    while position / native_fps + 1e-9 < next_video_s:
                        if not cap.grab():
                            return self._file_end(position)
                        position += 1
            ok, image = cap.read()
            mono_ns = time.perf_counter_ns()
            ts_ns = time.time_ns()
            if not ok:
                return self._file_end(position) if not self.live else "read failed"
            position += 1
            if period:
                now = time.monotonic()
                if self.live and now < next_due:
                    self._mark_ok()
                    continue
                next_video_s += period
                next_due = _next_slot(next_due, now, period)
            image = self._as_bgr(image)
            if image is None:
                self.count_error("unreadable")
                continue
            self._mark_ok()
            self._deliver(image, ts_ns, mono_ns)
        return "stop"

    def _file_end(self, position: int) -> str:
        if position == 0:
            return "no frames in file"
        if self.config.loop:
            return "loop"
        return "end"

    def _mark_ok(self) -> None:
        self._last_frame_mono = time.monotonic()
        self._backoff.reset()
        if self.state != "ok":
            logger.info("camera %s: frames flowing again", self.name)
            self.state = "ok"

    @staticmethod
    def _as_bgr(image: Any) -> np.ndarray | None:
        if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
            return None
        cv2 = _cv2()
        if image.ndim == 2:
            return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        if image.ndim == 3 and image.shape[2] == 4:
            return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
        if image.ndim == 3 and image.shape[2] == 3:
            return image
        return None

    def _deliver(self, image: np.ndarray, ts_ns: int, mono_ns: int) -> None:
        with self._cond:
            if self.live:
                if self._buffer:
                    self._buffer.clear()
                    self.dropped += 1
            else:
                # Files: every frame, in order; wait until the consumer took the last one.
                while self._buffer and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
            frame = Frame(
                source=self.name, index=self._index, ts_ns=ts_ns, mono_ns=mono_ns, image=image
            )
            self._index += 1
            self._buffer.append(frame)
            self._cond.notify_all()
