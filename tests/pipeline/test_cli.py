"""The ``edgeloop`` entry point and the schema files it keeps fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.schemas.jsonschema import check_schemas, write_schemas

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "devstack" in out
    assert "schemas" in out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_committed_json_schemas_are_fresh():
    problems = check_schemas(REPO / "docs" / "schemas")
    assert not problems, f"run `edgeloop schemas export`: {problems}"


def test_schema_check_detects_stale_files(tmp_path, capsys):
    write_schemas(tmp_path)
    (tmp_path / "result.v1.schema.json").write_text("{}")
    (tmp_path / "gone.v9.schema.json").write_text("{}")
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "result.v1.schema.json: stale" in err
    assert "gone.v9.schema.json: no longer generated" in err
    assert main(["schemas", "export", "--out", str(tmp_path)]) == 0
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 0


def test_devstack_bad_config_is_reported(tmp_path, capsys):
    cfg = tmp_path / "ds.yaml"
    cfg.write_text("kafka:\n  port: nope\n")
    assert main(["devstack", "--config", str(cfg), "status"]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:2: kafka.port" in err
