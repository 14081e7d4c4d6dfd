"""Which model package a message's ``model`` ref names, and which teacher judges it.

Messages carry a :class:`~pipeline.schemas.base.ModelRef` (name, version, SHA-256).
:class:`ModelRegistry` indexes the packages under some folders (and the built-in
ones) by that identity, so the cloud can read a model's labels and drift reference.
A ref nobody has a package for is normal (a device running a model the cloud was
not given): lookups return None, never raise.
"""

from __future__ import annotations

__all__ = ["ModelRegistry", "TeacherConfigError"]

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import EdgeloopError
from pipeline.modelpkg import (
    BUILTIN_DIR,
    ModelManifest,
    ModelPackage,
    ScoreReference,
    builtin_package,
    load_package,
)
from pipeline.schemas.base import ModelRef

logger = logging.getLogger(__name__)

#: How deep below each folder packages are looked for.
MAX_DEPTH = 3
#: Key of the teacher mapping that applies to edge models not named in it.
ANY_MODEL = "*"

_Key = tuple[str, str, str]


class TeacherConfigError(EdgeloopError):
    """No usable teacher for an edge model: none configured, not found, or other labels."""


def _key(ref: ModelRef) -> _Key:
    return (ref.name, ref.version, ref.sha256)


def _package_dirs(root: Path, depth: int) -> Iterator[Path]:
    if (root / "manifest.json").is_file():
        yield root
        return
    if depth <= 0:
        return
    try:
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        logger.warning("cannot list %s: %s", root, exc)
        return
    for sub in subs:
        yield from _package_dirs(sub, depth - 1)


def _read_manifest(folder: Path) -> ModelManifest | None:
    try:
        raw = json.loads((folder / "manifest.json").read_text())
        return ModelManifest.model_validate(raw, strict=False)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        logger.warning("skipping %s: unreadable manifest (%s)", folder, exc)
        return None


class ModelRegistry:
    """Model packages by identity, from folders and the built-in packages.

    Folders are scanned once, at construction (and by :meth:`refresh`): each folder
    that holds ``manifest.json`` is a package, up to :data:`MAX_DEPTH` levels down.
    A package is loaded (size and SHA-256 checked) the first time it is asked for,
    and kept. Earlier folders win over later ones and over the built-in packages
    when two hold the same identity.

    Args:
        dirs: Folders holding packages (a package folder itself, or its parent).
        include_builtin: Also index ``pipeline/modelpkg/builtin``.
    """

    def __init__(self, dirs: Sequence[Path | str] = (), include_builtin: bool = True) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self.include_builtin = include_builtin
        self._lock = threading.Lock()
        self._index: dict[_Key, Path] = {}
        self._by_name: dict[str, list[tuple[str, Path]]] = {}
        self._loaded: dict[Path, ModelPackage | None] = {}
        self._teachers: dict[str, ModelPackage] = {}
        self.refresh()

    def refresh(self) -> None:
        """Scan the folders again (new packages become known; loaded ones are kept)."""
        roots = [*self.dirs, *([BUILTIN_DIR] if self.include_builtin else [])]
        index: dict[_Key, Path] = {}
        by_name: dict[str, list[tuple[str, Path]]] = {}
        for root in roots:
            if not root.is_dir():
                logger.warning("model folder %s does not exist", root)
                continue
            for folder in _package_dirs(root, MAX_DEPTH):
                m = _read_manifest(folder)
                if m is None:
                    continue
                key = (m.name, m.version, m.sha256)
                if key not in index:
                    index[key] = folder
                    by_name.setdefault(m.name, []).append((m.version, folder))
        with self._lock:
            self._index, self._by_name = index, by_name
        logger.info("model registry: %d packages", len(index))

    def __len__(self) -> int:
        return len(self._index)

    def refs(self) -> list[ModelRef]:
        """The identities of every indexed package."""
        return [ModelRef(name=n, version=v, sha256=s) for n, v, s in sorted(self._index)]

    def _load(self, folder: Path) -> ModelPackage | None:
        with self._lock:
            if folder in self._loaded:
                return self._loaded[folder]
        try:
            pkg: ModelPackage | None = load_package(folder)
        except EdgeloopError as exc:
            logger.warning("model package %s is unusable: %s", folder, exc)
            pkg = None
        with self._lock:
            self._loaded[folder] = pkg
        return pkg

    def find(self, ref: ModelRef) -> ModelPackage | None:
        """The package with this name, version and SHA-256; None when there is none.

        A package whose file no longer matches its manifest counts as none (logged).
        """
        folder = self._index.get(_key(ref))
        if folder is None:
            return None
        pkg = self._load(folder)
        if pkg is not None and pkg.ref != ref:  # the folder was rewritten since the scan
            return None
        return pkg

    def score_reference(self, ref: ModelRef) -> ScoreReference | None:
        """The drift reference in the manifest of ``ref``'s package, if both exist."""
        pkg = self.find(ref)
        return pkg.manifest.score_reference if pkg is not None else None

    def _named(self, name: str) -> ModelPackage | None:
        """The highest version of an indexed package called ``name``."""

        def semver(v: str) -> tuple[int, ...]:
            core = v.partition("+")[0].partition("-")[0]
            return tuple(int(x) for x in core.split("."))

        candidates = sorted(self._by_name.get(name, ()), key=lambda vp: semver(vp[0]))
        return self._load(candidates[-1][1]) if candidates else None

    def _resolve_teacher(self, spec: str) -> ModelPackage:
        """A teacher package from a folder path, an indexed package name or a built-in name."""
        with self._lock:
            cached = self._teachers.get(spec)
        if cached is not None:
            return cached
        path = Path(spec).expanduser()
        if path.is_dir():
            pkg = load_package(path)
        else:
            found = self._named(spec)
            if found is None and ("/" in spec or spec.startswith(".")):
                raise TeacherConfigError(
                    f"teacher package folder {spec!r} does not exist",
                    where="teachers",
                    hint="give a package folder, or the name of a built-in package",
                )
            pkg = found if found is not None else builtin_package(spec)
        if pkg.manifest.task != "classify":
            raise TeacherConfigError(
                f"teacher {spec!r} is a {pkg.manifest.task} model, not a classifier",
                where="teachers",
                hint="name an FP32 image classifier, e.g. conveyor-teacher",
            )
        with self._lock:
            self._teachers[spec] = pkg
        return pkg

    def teacher_for(self, edge_ref: ModelRef, teachers: Mapping[str, str]) -> ModelPackage:
        """The teacher package that judges frames of the edge model ``edge_ref``.

        Args:
            edge_ref: The model that made the edge decision.
            teachers: Edge model name -> teacher (a built-in package name such as
                ``conveyor-teacher``, the name of a package in the registry's
                folders, or a package folder). The key ``*`` applies to models not
                named.

        Raises:
            TeacherConfigError: no teacher for this model, a teacher that is not a
                classifier, or (when the edge package is known) a teacher whose
                labels are not the edge model's.
            ModelPackageError: the teacher package is missing or damaged.
        """
        spec = teachers.get(edge_ref.name, teachers.get(ANY_MODEL))
        if spec is None:
            raise TeacherConfigError(
                f"no teacher configured for edge model {edge_ref.name!r}",
                where="teachers",
                hint=f"add '{edge_ref.name}: <teacher package>' (or '{ANY_MODEL}: ...') to the "
                f"teacher map; configured: {sorted(teachers)}",
            )
        teacher = self._resolve_teacher(spec)
        edge = self.find(edge_ref)
        if edge is not None and set(edge.manifest.labels) != set(teacher.manifest.labels):
            only_edge = sorted(set(edge.manifest.labels) - set(teacher.manifest.labels))
            only_teacher = sorted(set(teacher.manifest.labels) - set(edge.manifest.labels))
            raise TeacherConfigError(
                f"teacher {teacher.manifest.name} {teacher.manifest.version} and edge model "
                f"{edge_ref.name} {edge_ref.version} have different labels (only the edge "
                f"model: {only_edge}; only the teacher: {only_teacher})",
                where=f"teachers.{edge_ref.name if edge_ref.name in teachers else ANY_MODEL}",
                hint="a teacher must know exactly the edge model's classes; configure the "
                "teacher trained on the same dataset",
            )
        return teacher
