"""Model package format: manifest rules, checked loading, atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.modelpkg import (
    ModelManifest,
    ModelPackageError,
    builtin_package,
    load_package,
    sha256_file,
    write_package,
)


def _classify_fields(**over: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "parts",
        "version": "1.2.3",
        "task": "classify",
        "precision": "int8",
        "opset": 17,
        "input": {"kind": "image", "width": 96, "height": 96},
        "output_kind": "probs",
        "labels": ["ok", "crack"],
        "thresholds": {"kind": "classify", "min_confidence": 0.9, "per_class": {"crack": 0.8}},
    }
    fields.update(over)
    return fields


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    p = tmp_path / "src.onnx"
    p.write_bytes(b"not really onnx, but bytes to hash")
    return p


def test_write_then_load_round_trip(tmp_path: Path, onnx_file: Path) -> None:
    out = write_package(tmp_path / "pkg", onnx_file, _classify_fields())
    pkg = load_package(out)
    assert pkg.manifest.sha256 == sha256_file(onnx_file)
    assert pkg.manifest.bytes == onnx_file.stat().st_size
    assert pkg.ref.name == "parts"
    assert pkg.ref.version == "1.2.3"
    assert pkg.onnx_path.read_bytes() == onnx_file.read_bytes()
    assert not list(out.glob(".*")), "no temporary files left behind"


def test_tampered_model_is_refused(tmp_path: Path, onnx_file: Path) -> None:
    out = write_package(tmp_path / "pkg", onnx_file, _classify_fields())
    data = bytearray((out / "model.onnx").read_bytes())
    data[0] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="SHA-256"):
        load_package(out)


def test_truncated_model_is_refused(tmp_path: Path, onnx_file: Path) -> None:
    out = write_package(tmp_path / "pkg", onnx_file, _classify_fields())
    (out / "model.onnx").write_bytes(b"short")
    with pytest.raises(ModelPackageError, match="bytes"):
        load_package(out)


def test_missing_manifest_and_model(tmp_path: Path, onnx_file: Path) -> None:
    with pytest.raises(ModelPackageError, match=r"no manifest\.json") as err:
        load_package(tmp_path)
    assert err.value.hint
    out = write_package(tmp_path / "pkg", onnx_file, _classify_fields())
    (out / "model.onnx").unlink()
    with pytest.raises(ModelPackageError, match="missing"):
        load_package(out)


def test_invalid_manifest_names_the_field(tmp_path: Path, onnx_file: Path) -> None:
    out = write_package(tmp_path / "pkg", onnx_file, _classify_fields())
    raw = json.loads((out / "manifest.json").read_text())
    raw["version"] = "one"
    (out / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match="version"):
        load_package(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="cannot read"):
        load_package(out)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"labels": ["ok", "ok"]}, "unique"),
        ({"thresholds": {"kind": "classify", "per_class": {"dent": 0.5}}}, "unknown labels"),
        ({"output_kind": "score"}, "probs or logits"),
        ({"input": {"kind": "image", "width": 96, "height": 96, "mean": [0.5]}}, "mean"),
        ({"thresholds": {"kind": "anomaly", "raise_at": 1.0, "clear_at": 0.5}}, "classify"),
    ],
)
def test_manifest_rules(over: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelManifest.model_validate(
            {**_classify_fields(**over), "sha256": "0" * 64, "bytes": 1}, strict=False
        )


def test_anomaly_manifest_rules() -> None:
    base = {
        "name": "machine",
        "version": "1.0.0",
        "task": "anomaly",
        "precision": "int8",
        "opset": 17,
        "sha256": "0" * 64,
        "bytes": 1,
        "input": {
            "kind": "sensor",
            "rate_hz": 1000,
            "window": 512,
            "hop": 256,
            "channels": [{"name": "vibration_g", "min": -50, "max": 50}],
        },
        "output_kind": "score",
        "labels": ["normal", "anomaly"],
        "thresholds": {"kind": "anomaly", "raise_at": 2.0, "clear_at": 1.0},
    }
    m = ModelManifest.model_validate(base, strict=False)
    assert m.input.kind == "sensor"
    assert m.input.window_s == pytest.approx(0.512)
    with pytest.raises(ValidationError, match="clear_at"):
        ModelManifest.model_validate(
            {**base, "thresholds": {"kind": "anomaly", "raise_at": 1.0, "clear_at": 2.0}},
            strict=False,
        )
    bad_channel = {"name": "t", "min": 5, "max": 5}
    with pytest.raises(ValidationError, match="min must be below max"):
        ModelManifest.model_validate(
            {**base, "input": {**base["input"], "channels": [bad_channel]}},  # type: ignore[dict-item]
            strict=False,
        )


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ModelPackageError, match="no built-in model package") as err:
        builtin_package("no-such-model")
    assert "built-in packages" in (err.value.hint or "")


def test_input_stats_rules() -> None:
    stats = {"channel_mean": [[-1.0, 1.0]] * 3, "contrast": [0.1, 2.0]}
    ok = {**_classify_fields(input_stats=stats), "sha256": "0" * 64, "bytes": 1}
    assert ModelManifest.model_validate(ok, strict=False).input_stats is not None
    with pytest.raises(ValidationError, match="one range per input channel"):
        ModelManifest.model_validate(
            {**ok, "input_stats": {**stats, "channel_mean": [[-1.0, 1.0]]}}, strict=False
        )
    with pytest.raises(ValidationError, match="low <= high"):
        ModelManifest.model_validate(
            {**ok, "input_stats": {**stats, "contrast": [2.0, 0.1]}}, strict=False
        )
