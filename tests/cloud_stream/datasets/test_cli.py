"""``edgeloop datasets``: every subcommand through the real entry point."""

from __future__ import annotations

import json

import pytest

from cloud_stream.datasets import SampleWriter
from pipeline.cli.main import main

from .conftest import jpeg, meta


@pytest.fixture
def pooled(local_config):
    writer = SampleWriter(local_config)
    metas = [meta(teacher_label=("dent", "ok")[i % 2]) for i in range(12)]
    for i, m in enumerate(metas):
        writer.add(jpeg(i), m)
    return ["--root", local_config.root], metas


def test_snapshot_list_show(pooled, capsys):
    where, _ = pooled
    assert main(["datasets", "snapshot", *where, "--note", "week 12"]) == 0
    assert capsys.readouterr().out.startswith("v0001: 12 samples (train ")
    assert main(["datasets", "list", *where]) == 0
    out = capsys.readouterr().out
    assert "v0001" in out
    assert "week 12" in out
    assert main(["datasets", "show", *where, "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["dent"][-1] == "6"
    assert rows["total"][-1] == "12"
    assert main(["datasets", "show", *where, "latest", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == "v0001"
    assert data["total"] == 12
    assert "samples" not in data
    assert main(["datasets", "list", *where, "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == ["v0001"]


def test_import_corrections_and_stats(pooled, tmp_path, capsys):
    where, metas = pooled
    path = tmp_path / "fix.csv"
    path.write_text(f"id,label\n{metas[0].frame_id},scratch\n")
    assert main(["datasets", "import-corrections", *where, str(path)]) == 0
    assert "1 corrections imported" in capsys.readouterr().out
    assert main(["datasets", "stats", *where, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["by_label"] == {"dent": 5, "ok": 6, "scratch": 1}
    assert stats["corrected"] == 1
    assert main(["datasets", "stats", *where]) == 0
    out = capsys.readouterr().out
    assert "pool: 12 samples, 1 with a human label" in out
    assert "uncertain" in out


def test_errors_exit_non_zero_with_the_reason(pooled, tmp_path, capsys):
    where, _ = pooled
    path = tmp_path / "fix.csv"
    path.write_text("id,label\naaaaaaaaaaaa,ok\n")
    assert main(["datasets", "import-corrections", *where, str(path)]) == 1
    assert f"{path}:2: aaaaaaaaaaaa is not in the pool" in capsys.readouterr().err
    assert main(["datasets", "show", *where, "v7"]) == 1
    assert "no version 'v7'" in capsys.readouterr().err
    empty = ["--root", str(tmp_path / "none")]
    assert main(["datasets", "snapshot", *empty]) == 1
    assert "the pool is empty" in capsys.readouterr().err


def test_config_file(pooled, tmp_path, capsys):
    root = pooled[0][1]
    path = tmp_path / "cloud.yaml"
    path.write_text(f"datasets:\n  root: {root}\n")
    assert main(["datasets", "stats", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 12
    path.write_text("datasets:\n  split: {train: 2}\n")
    assert main(["datasets", "stats", "--config", str(path)]) == 1
    assert f"{path}:2: datasets.split" in capsys.readouterr().err
