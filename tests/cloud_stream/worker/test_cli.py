"""``edgeloop cloud validate-config``: every problem printed, non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.main import main

OFF = "agents: {slowpath: false, rules: false, sink: false, datasets: false}\n"


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["cloud", "validate-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_broken_yaml_exits_2_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text("app_id: cloud-a\ntopics:\n  results: [unclosed\n")
    code, out, err = _validate(path, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert str(path) in err


def test_every_invalid_field_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "app_id: 'bad id'\ntopics:\n  results: 'a b'\nslowpath:\n  batch_size: 0\nextra: 1\n"
    )
    code, _, err = _validate(path, capsys)
    assert code == 2
    for where in ("app_id", "topics.results", "slowpath.batch_size", "extra"):
        assert where in err, where
    assert f"{path}:1" in err
    assert f"{path}:3" in err
    assert f"{path}:5" in err


def test_a_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _validate(tmp_path / "nope.yaml", capsys)
    assert code == 2
    assert "nope.yaml" in err


def test_a_missing_rules_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(OFF + "rules_file: rules/missing.yaml\n")
    code, _, err = _validate(path, capsys)
    assert code == 2
    assert str(tmp_path / "rules" / "missing.yaml") in err


def test_a_bad_rule_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: r1\n    kind: nonsense\n")
    path = tmp_path / "cloud.yaml"
    path.write_text(OFF + "rules_file: rules.yaml\n")
    code, _, err = _validate(path, capsys)
    assert code == 2
    assert "rules.yaml" in err
    assert "rules[0]" in err


def test_a_bad_teacher_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "agents: {slowpath: true, rules: false, sink: false, datasets: false}\n"
        "slowpath: {teachers: {conveyor-int8: machine-anomaly-fp32}, threads: 1}\n"
    )
    code, _, err = _validate(path, capsys)
    assert code == 2
    assert "not a classifier" in err


def test_a_valid_config_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {id: r1, kind: device_offline}\n  - {id: r2, kind: anomaly_sustained}\n"
    )
    path = tmp_path / "cloud.yaml"
    path.write_text(OFF + "rules_file: rules.yaml\n")
    code, out, err = _validate(path, capsys)
    assert (code, err) == (0, "")
    assert out.strip() == f"{path}: valid (2 rules)"


def test_a_catch_all_teacher_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "agents: {slowpath: true, rules: false, sink: false, datasets: false}\n"
        "slowpath: {teachers: {'*': conveyor-teacher}, threads: 1}\n"
    )
    code, out, err = _validate(path, capsys)
    assert (code, err) == (0, "")
    assert "valid (0 rules)" in out
