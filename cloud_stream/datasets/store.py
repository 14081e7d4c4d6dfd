"""Byte storage of one dataset: a local folder, or any fsspec URL.

Files are addressed by relative POSIX keys (``pool/3f/<id>.jpg``). Every write is
atomic: a reader sees no file or the whole file. Locally that is a temporary file
in the same folder renamed into place; with fsspec it is a temporary key moved into
place, except on object stores, whose single PUT is atomic already. Names that start
with ``.`` (temporary files, claims, the snapshot lock) are never listed.

Writes are not fsync'ed: a crash of the process never shows a partial file, a power
cut may lose the last writes (the next replay from Kafka adds them again).
"""

from __future__ import annotations

__all__ = ["DatasetError", "FsspecStore", "LocalStore", "Store", "open_store"]

import os
import shutil
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from cloud_stream.datasets.config import DatasetConfig
from pipeline.errors import EdgeloopError

#: fsspec protocols whose single PUT is atomic (and whose "move" is a copy).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})


class DatasetError(EdgeloopError):
    """A dataset cannot be read, written or snapshotted."""


def _temp_name(name: str) -> str:
    return f".{name}.tmp-{uuid.uuid4().hex[:12]}"


class Store(ABC):
    """Files of one dataset folder, addressed by relative keys.

    Attributes:
        url: Where the folder is (a path or a URL), for messages and manifests.
    """

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write ``data`` to ``key`` atomically.

        Args:
            key: Relative key.
            data: The whole content.
            exclusive: Keep an existing file; then returns False and writes nothing.

        Returns:
            True when the file was written.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Content of ``key``; raises :class:`DatasetError` when missing or unreadable."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file or folder ``key`` exists."""

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """Sorted names directly under folder ``prefix`` (empty when missing)."""

    @abstractmethod
    def walk(self, prefix: str) -> list[str]:
        """Sorted keys of every file under folder ``prefix``, recursively."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy file ``src`` to ``dst`` (a hard link where the backend allows)."""

    @abstractmethod
    def claim_dir(self, prefix: str) -> bool:
        """Create folder ``prefix`` for this caller only; False when it exists already."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Delete file or folder ``key`` (recursively); missing is fine."""

    @abstractmethod
    def clean_temp(self, prefix: str, older_than_s: float) -> int:
        """Delete temporary files under ``prefix`` left by crashed writers; returns the count."""

    def where(self, key: str) -> str:
        """Printable location of ``key``."""
        return f"{self.url.rstrip('/')}/{key}" if key else self.url

    def local_path(self, key: str) -> Path | None:
        """Local path of ``key`` when the store is a local folder, else None."""
        return None


class LocalStore(Store):
    """A dataset in a local folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.url = str(self.root)
        self._dirs: set[Path] = set()
        self._dirs_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def _parent(self, path: Path) -> None:
        parent = path.parent
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)
            with self._dirs_lock:
                self._dirs.add(parent)

    def local_path(self, key: str) -> Path | None:
        """Local path of ``key``."""
        return self._path(key)

    def put(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write ``data`` to ``key`` atomically (temporary file, then rename or link)."""
        path = self._path(key)
        self._parent(path)
        tmp = path.with_name(_temp_name(path.name))
        try:
            with open(tmp, "xb") as f:
                f.write(data)
            if not exclusive:
                os.replace(tmp, path)
                return True
            try:
                os.link(tmp, path)  # fails when the file exists: first writer wins
            except FileExistsError:
                return False
            except OSError:  # no hard links on this filesystem
                if path.exists():
                    return False
                os.replace(tmp, path)
            return True
        except OSError as exc:
            raise DatasetError(f"cannot write: {exc}", where=str(path)) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        """Content of ``key``."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read: {exc}", where=str(path)) from exc

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return self._path(key).exists()

    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix``."""
        try:
            return sorted(e.name for e in os.scandir(self._path(prefix)) if e.name[0] != ".")
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk(self, prefix: str) -> list[str]:
        """Keys of the files under ``prefix``."""
        base = self._path(prefix)
        out: list[str] = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if d[0] != "."]
            rel = Path(folder).relative_to(self.root).as_posix()
            out.extend(f"{rel}/{f}" if rel != "." else f for f in files if f[0] != ".")
        return sorted(out)

    def copy(self, src: str, dst: str) -> None:
        """Hard-link ``src`` to ``dst``, or copy when linking is not possible."""
        source, target = self._path(src), self._path(dst)
        self._parent(target)
        try:
            try:
                os.link(source, target)
            except FileExistsError:
                raise
            except OSError:
                shutil.copyfile(source, target)
        except OSError as exc:
            raise DatasetError(f"cannot copy {source}: {exc}", where=str(target)) from exc

    def claim_dir(self, prefix: str) -> bool:
        """``mkdir``: atomic, fails when the folder exists."""
        path = self._path(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            return False
        return True

    def remove(self, key: str) -> None:
        """Delete a file or a folder tree."""
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def clean_temp(self, prefix: str, older_than_s: float) -> int:
        """Delete ``.*.tmp-*`` files older than ``older_than_s``."""
        cutoff = time.time() - older_than_s
        count = 0
        for folder, _dirs, files in os.walk(self._path(prefix)):
            for name in files:
                path = Path(folder) / name
                if name[0] == "." and ".tmp-" in name:
                    try:
                        if path.stat().st_mtime <= cutoff:
                            path.unlink()
                            count += 1
                    except FileNotFoundError:
                        continue
        return count


class FsspecStore(Store):
    """A dataset at an fsspec URL (``memory://``, ``s3://``, ``gcs://``...).

    Exclusive writes check then write: another process writing the same key at the
    same moment may also succeed (same frame, same content, so no harm done).
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError as exc:
            raise DatasetError(
                "fsspec is not installed",
                where=url,
                hint="pip install fsspec (and s3fs for s3://, gcsfs for gs://)",
            ) from exc
        try:
            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise DatasetError(
                f"cannot open storage: {exc}",
                where=url,
                hint="install the fsspec backend for this URL (s3fs for s3://) and check "
                "datasets.storage_options",
            ) from exc
        self.fs: Any = fs
        self.base = str(path).rstrip("/")
        self.url = url.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._native_atomic = protocol in OBJECT_STORES

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}" if key else self.base

    def _rel(self, path: str) -> str:
        path = self.fs._strip_protocol(path).rstrip("/")
        return path[len(self.base) + 1 :] if path.startswith(self.base + "/") else path

    def put(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write ``data`` to ``key`` (temporary key and move, or one PUT on object stores)."""
        path = self._path(key)
        try:
            if exclusive and self.fs.exists(path):
                return False
            if self._native_atomic:
                self.fs.pipe_file(path, data)
                return True
            parent, _, name = path.rpartition("/")
            tmp = f"{parent}/{_temp_name(name)}"
            try:
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, path)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
            return True
        except OSError as exc:
            raise DatasetError(f"cannot write: {exc}", where=self.where(key)) from exc

    def get(self, key: str) -> bytes:
        """Content of ``key``."""
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except OSError as exc:
            raise DatasetError(f"cannot read: {exc}", where=self.where(key)) from exc

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return bool(self.fs.exists(self._path(key)))

    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix``."""
        try:
            entries = self.fs.ls(self._path(prefix), detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = (self._rel(str(e)).rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if n and n[0] != ".")

    def walk(self, prefix: str) -> list[str]:
        """Keys of the files under ``prefix``."""
        try:
            found = self.fs.find(self._path(prefix))
        except FileNotFoundError:
            return []
        keys = (self._rel(str(p)) for p in found)
        return sorted(k for k in keys if not any(part[0] == "." for part in k.split("/")))

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy where the backend has one."""
        try:
            self.fs.copy(self._path(src), self._path(dst))
        except OSError as exc:
            raise DatasetError(f"cannot copy {src}: {exc}", where=self.where(dst)) from exc

    def claim_dir(self, prefix: str) -> bool:
        """Object stores have no folders: the claim is a hidden marker file."""
        if self.fs.exists(self._path(prefix)):
            return False
        return self.put(f"{prefix}/.claim", b"", exclusive=True)

    def remove(self, key: str) -> None:
        """Delete a file or a folder tree."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def clean_temp(self, prefix: str, older_than_s: float) -> int:
        """Delete temporary keys older than ``older_than_s`` (when the backend dates them)."""
        cutoff = time.time() - older_than_s
        count = 0
        try:
            found = self.fs.find(self._path(prefix))
        except FileNotFoundError:
            return 0
        for path in found:
            name = str(path).rsplit("/", 1)[-1]
            if not (name.startswith(".") and ".tmp-" in name):
                continue
            try:
                modified = self.fs.modified(path).timestamp()
            except (NotImplementedError, OSError, AttributeError):
                continue
            if modified <= cutoff:
                self.fs.rm(path)
                count += 1
        return count


def open_store(config: DatasetConfig) -> Store:
    """The store of ``config``'s dataset: local unless ``root`` is a URL (``file://`` is local)."""
    url = config.url
    if url.startswith("file://"):
        return LocalStore(url[len("file://") :])
    if "://" not in url:
        return LocalStore(url)
    return FsspecStore(url, config.storage_options)
