"""The model registry: lookups by identity, drift references, teacher choice and checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cloud_stream.slowpath import ModelRegistry, TeacherConfigError
from pipeline.modelpkg import ModelPackageError, builtin_package
from pipeline.schemas.base import ModelRef

EDGE = builtin_package("conveyor-int8").ref
TEACHERS = {"conveyor-int8": "conveyor-teacher"}


def _relabelled(dest: Path, name: str, rename: dict[str, str]) -> Path:
    """A copy of conveyor-int8 under another name, with some labels renamed."""
    shutil.copytree(builtin_package("conveyor-int8").path, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m["name"] = name
    m["labels"] = [rename.get(x, x) for x in m["labels"]]
    per_class = m["thresholds"]["per_class"]
    m["thresholds"]["per_class"] = {rename.get(k, k): v for k, v in per_class.items()}
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


@pytest.fixture(scope="module")
def builtin() -> ModelRegistry:
    return ModelRegistry([])


def test_finds_builtin_packages_by_identity(builtin):
    assert len(builtin) == 5
    pkg = builtin.find(EDGE)
    assert pkg is not None
    assert pkg.ref == EDGE
    assert builtin.find(EDGE) is pkg  # loaded once, kept


@pytest.mark.parametrize(
    "ref",
    [
        EDGE.model_copy(update={"sha256": "0" * 64}),
        EDGE.model_copy(update={"version": "9.9.9"}),
        ModelRef(name="someone-elses", version="1.0.0", sha256="a" * 64),
    ],
)
def test_unknown_refs_are_none(builtin, ref):
    assert builtin.find(ref) is None
    assert builtin.score_reference(ref) is None


def test_score_reference_of_a_known_model(builtin):
    ref = builtin.score_reference(EDGE)
    assert ref is not None
    assert ref == builtin_package("conveyor-int8").manifest.score_reference


def test_without_builtin_and_with_a_folder(tmp_path):
    _relabelled(tmp_path / "models" / "line-a" / "v1", "line-a", {})
    reg = ModelRegistry([tmp_path / "models", tmp_path / "missing"], include_builtin=False)
    assert [r.name for r in reg.refs()] == ["line-a"]
    assert reg.find(EDGE) is None
    assert reg.find(reg.refs()[0]) is not None


def test_broken_and_tampered_packages_never_crash(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    tampered = _relabelled(tmp_path / "tampered", "tampered", {})
    reg = ModelRegistry([tmp_path], include_builtin=False)
    assert len(reg) == 1
    ref = reg.refs()[0]
    with (tampered / "model.onnx").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    assert reg.find(ref) is None


def test_teacher_by_builtin_name(builtin):
    teacher = builtin.teacher_for(EDGE, TEACHERS)
    assert teacher.manifest.name == "conveyor-teacher"
    assert builtin.teacher_for(EDGE, TEACHERS) is teacher


def test_teacher_by_path_and_by_default_key(builtin):
    path = str(builtin_package("conveyor-teacher").path)
    assert builtin.teacher_for(EDGE, {"*": path}).manifest.name == "conveyor-teacher"


def test_teacher_for_an_unknown_edge_model_is_not_checked(builtin):
    ref = ModelRef(name="conveyor-int8", version="2.0.0", sha256="b" * 64)
    assert builtin.teacher_for(ref, TEACHERS).manifest.name == "conveyor-teacher"


def test_teacher_with_other_labels_is_refused(tmp_path):
    _relabelled(tmp_path / "edge", "edge-x", {"dent": "bump", "crack": "split"})
    reg = ModelRegistry([tmp_path])
    edge = next(r for r in reg.refs() if r.name == "edge-x")
    with pytest.raises(TeacherConfigError) as err:
        reg.teacher_for(edge, {"edge-x": "conveyor-teacher"})
    text = str(err.value)
    assert "['bump', 'split']" in text
    assert "['crack', 'dent']" in text


def test_missing_or_unusable_teacher_is_a_clear_error(builtin, tmp_path):
    with pytest.raises(TeacherConfigError, match="no teacher configured for edge model"):
        builtin.teacher_for(EDGE, {"other": "conveyor-teacher"})
    with pytest.raises(TeacherConfigError, match="not a classifier"):
        builtin.teacher_for(EDGE, {"*": "machine-anomaly-fp32"})
    with pytest.raises(ModelPackageError, match="no built-in model package"):
        builtin.teacher_for(EDGE, {"*": "no-such-teacher"})
    with pytest.raises(TeacherConfigError, match="does not exist"):
        builtin.teacher_for(EDGE, {"*": str(tmp_path / "nowhere")})
