"""The ``folder`` source: images from a folder, in name order, optionally watched for new ones.

Files matching ``pattern`` are read in sorted order (paths relative to the
folder). With ``labels_from_dirs`` the folder is a labelled dataset,
``root/<label>/<image>``, and each frame's ``truth`` is its label. Files that
OpenCV cannot decode are counted as ``unreadable`` and skipped, with a
rate-limited warning naming the file. ``watch`` polls for files that appear
later (a live drop folder); ``loop`` starts again at the end instead.
"""

from __future__ import annotations

__all__ = ["FolderConfig", "FolderSource"]

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edge_node.sources.base import Frame, Source, SourceConfig, SourceError, register
from pipeline.logs import WarnLimiter

logger = logging.getLogger(__name__)


class FolderConfig(SourceConfig):
    """Images read from a folder."""

    type: Literal["folder"] = Field(default="folder", description="Source plugin key")
    path: str = Field(min_length=1, description="Folder to read images from")
    pattern: str = Field(
        default="*", min_length=1, description="Glob pattern of image files, e.g. '*.jpg'"
    )
    recursive: bool = Field(default=False, description="Also look in sub-folders, at any depth")
    labels_from_dirs: bool = Field(
        default=False,
        description="Labelled layout root/<label>/<image>: the sub-folder name is the truth",
    )
    loop: bool = Field(default=False, description="Start again at the first image at the end")
    fps: float = Field(
        default=0,
        ge=0,
        le=1000,
        description="Deliver at most this many images per second; 0 = no pacing",
    )
    watch: bool = Field(default=False, description="Keep polling for new files; never ends")
    poll_s: float = Field(
        default=1.0, gt=0, le=3600, description="How often a watched folder is listed again"
    )
    settle_s: float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="Watched folders: a new file is read once it was unchanged this long",
    )

    @model_validator(mode="after")
    def _check(self) -> FolderConfig:
        if self.loop and self.watch:
            raise ValueError("choose loop or watch, not both")
        if "/" in self.pattern or "\\" in self.pattern or ".." in self.pattern:
            raise ValueError("pattern matches file names only; use recursive for sub-folders")
        return self


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SourceError("OpenCV is not installed", hint="pip install 'edgeloop[edge]'") from exc
    return cv2


@register(FolderConfig)
class FolderSource(Source):
    """Frames from the image files of a folder; see the module docstring."""

    kind = "image"
    config: FolderConfig

    def __init__(self, config: FolderConfig) -> None:
        super().__init__(config)
        self.root = Path(config.path).expanduser()
        self._pending: deque[Path] = deque()
        self._seen: set[Path] = set()
        self._sizes: dict[Path, tuple[int, float]] = {}
        self._index = 0
        self._next_due = 0.0
        self._next_poll = 0.0
        self._ended = False
        self._pass_frames = 0
        self._warn = WarnLimiter(logger)

    def open(self) -> None:
        """List the folder.

        Raises:
            SourceError: The folder does not exist, or (unless watched) holds no matching file.
        """
        _cv2()
        if not self.root.is_dir():
            raise SourceError(
                "image folder not found",
                where=str(self.root),
                hint="check 'path' (relative paths start at the working directory)",
            )
        self._scan()
        if not self._pending and not self.config.watch:
            raise SourceError(
                f"no files match {self._glob()!r}",
                where=str(self.root),
                hint="check 'pattern', 'recursive' and 'labels_from_dirs'",
            )

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next decodable image, or ``None`` after ``timeout`` or at the end."""
        deadline = time.monotonic() + max(0.0, timeout)
        if self.config.fps:
            # Pacing, not awaiting an event: the next slot is a fixed time.
            wait = self._next_due - time.monotonic()
            if wait > deadline - time.monotonic():
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            if wait > 0:
                time.sleep(wait)
        while True:
            if not self._pending:
                self._refill()
            if self._pending:
                frame = self._load(self._pending.popleft())
                if frame is not None:
                    self._pass_frames += 1
                    if self.config.fps:
                        period = 1.0 / self.config.fps
                        now = time.monotonic()
                        due = self._next_due + period
                        self._next_due = due if due > now else now + period
                    return frame
            elif self._ended:
                return None
            else:  # watching and nothing new yet: sleep until the next poll
                now = time.monotonic()
                if now >= deadline:
                    return None
                time.sleep(max(0.0, min(deadline, self._next_poll) - now))
                continue
            if time.monotonic() >= deadline:
                return None

    @property
    def exhausted(self) -> bool:
        """True after the last image of an unwatched, unlooped folder."""
        return self._ended

    # --- internals --------------------------------------------------------------------
    def _glob(self) -> str:
        prefix = "**/" if self.config.recursive else ""
        if self.config.labels_from_dirs and not self.config.recursive:
            prefix = "*/"
        return prefix + self.config.pattern

    def _list(self) -> list[Path]:
        files = (p for p in self.root.glob(self._glob()) if p.is_file())
        return sorted(files, key=lambda p: p.relative_to(self.root).as_posix())

    def _scan(self) -> None:
        """Queue the files not seen yet (in watch mode only those that have settled)."""
        self._next_poll = time.monotonic() + self.config.poll_s
        now = time.time()
        for path in self._list():
            if path in self._seen:
                continue
            if self.config.watch and self.config.settle_s > 0:
                try:
                    st = path.stat()
                except OSError:
                    continue
                stamp = (st.st_size, st.st_mtime)
                if self._sizes.get(path) != stamp or now - st.st_mtime < self.config.settle_s:
                    self._sizes[path] = stamp  # still being written: look again next poll
                    continue
                self._sizes.pop(path, None)
            self._seen.add(path)
            self._pending.append(path)

    def _refill(self) -> None:
        if self.config.watch:
            if time.monotonic() >= self._next_poll:
                self._scan()
        elif self.config.loop and self._pass_frames:
            self._pass_frames = 0
            self._seen.clear()
            self._scan()
            if not self._pending:
                logger.warning("folder %s: no files left in %s, stopping", self.name, self.root)
                self._ended = True
        else:
            if self.config.loop:
                logger.warning(
                    "folder %s: no readable image in %s, not looping", self.name, self.root
                )
            self._ended = True

    def _label(self, path: Path) -> str | None:
        if not self.config.labels_from_dirs:
            return None
        parts = path.relative_to(self.root).parts
        return parts[0] if len(parts) > 1 else None

    def _load(self, path: Path) -> Frame | None:
        cv2 = _cv2()
        try:
            # imdecode of the bytes, not imread: it copes with any path encoding and
            # reports an I/O error apart from a decode error.
            data = np.fromfile(path, dtype=np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        except (OSError, cv2.error) as exc:
            self._warn.warn("folder %s: cannot read %s: %s", self.name, path, exc)
            self.count_error("unreadable")
            return None
        if image is None or image.size == 0:
            self._warn.warn("folder %s: not a readable image, skipped: %s", self.name, path)
            self.count_error("unreadable")
            return None
        frame = Frame(
            source=self.name,
            index=self._index,
            ts_ns=time.time_ns(),
            mono_ns=time.perf_counter_ns(),
            image=image,
            truth=self._label(path),
        )
        self._index += 1
        return frame
