"""Reading, checking and writing model packages (a folder: ONNX file + ``manifest.json``)."""

from __future__ import annotations

__all__ = [
    "BUILTIN_DIR",
    "ModelPackage",
    "ModelPackageError",
    "builtin_package",
    "load_package",
    "sha256_file",
    "write_package",
]

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import EdgeloopError
from pipeline.modelpkg.manifest import ModelManifest
from pipeline.schemas.base import ModelRef

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
MANIFEST = "manifest.json"


class ModelPackageError(EdgeloopError):
    """A model package is missing, incomplete, tampered with or not usable here."""


def sha256_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelPackage:
    """A checked model package on disk."""

    path: Path
    manifest: ModelManifest

    @property
    def onnx_path(self) -> Path:
        """The ONNX file."""
        return self.path / self.manifest.file

    @property
    def ref(self) -> ModelRef:
        """The identity results carry."""
        m = self.manifest
        return ModelRef(name=m.name, version=m.version, sha256=m.sha256)


def load_package(path: Path | str) -> ModelPackage:
    """Load and check a package: manifest valid, ONNX file present, size and SHA-256 match.

    Raises:
        ModelPackageError: naming the package and what to do.
    """
    root = Path(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise ModelPackageError(
            f"no {MANIFEST} in model package {root}",
            where=str(root),
            hint="point to a folder made by 'edgeloop models export/quantize', or write a "
            "manifest for your ONNX model (see README, 'Bring your own model')",
        )
    try:
        raw = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(
            f"cannot read {MANIFEST}: {exc}", where=str(mpath), hint="restore the package"
        ) from exc
    try:
        manifest = ModelManifest.model_validate(raw, strict=False)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelPackageError(
            f"invalid manifest: {problems}",
            where=str(mpath),
            hint="fix the fields named above",
        ) from exc
    onnx = root / manifest.file
    if not onnx.is_file():
        raise ModelPackageError(
            f"model file {manifest.file} is missing", where=str(root), hint="restore the package"
        )
    size = onnx.stat().st_size
    if size != manifest.bytes:
        raise ModelPackageError(
            f"{manifest.file} is {size} bytes, the manifest says {manifest.bytes}",
            where=str(onnx),
            hint="the file was truncated or replaced; restore the package",
        )
    digest = sha256_file(onnx)
    if digest != manifest.sha256:
        raise ModelPackageError(
            f"SHA-256 of {manifest.file} does not match the manifest",
            where=str(onnx),
            hint="the file was modified; restore the package or rebuild it",
        )
    return ModelPackage(path=root, manifest=manifest)


def write_package(dest: Path | str, onnx_file: Path | str, manifest: dict[str, object]) -> Path:
    """Write a package folder: copy the ONNX file and write a manifest with its digest.

    ``manifest`` holds every field except ``file``, ``sha256`` and ``bytes``, which
    are filled in here. The manifest is validated before anything is written, and
    written atomically.
    """
    out = Path(dest)
    src = Path(onnx_file)
    data = src.read_bytes()
    fields = dict(manifest)
    fields.update(file="model.onnx", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    checked = ModelManifest.model_validate(fields, strict=False)
    out.mkdir(parents=True, exist_ok=True)
    for name, payload in (
        ("model.onnx", data),
        (MANIFEST, (checked.model_dump_json(indent=2) + "\n").encode()),
    ):
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; installed packages must be readable
        os.replace(tmp, out / name)
    return out


def builtin_package(name: str) -> ModelPackage:
    """A package shipped with edgeloop, e.g. ``conveyor-int8`` or ``conveyor-teacher``."""
    path = BUILTIN_DIR / name
    if not path.is_dir():
        have = sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir())
        raise ModelPackageError(
            f"no built-in model package {name!r}",
            where=str(BUILTIN_DIR),
            hint=f"built-in packages: {have}; or give a package folder path",
        )
    return load_package(path)
