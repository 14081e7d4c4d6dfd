"""Human corrections: CSV and JSON, every bad row with file:line, append-only storage."""

from __future__ import annotations

import json

import pytest

from cloud_stream.datasets import (
    CorrectionsError,
    DatasetConfig,
    SampleWriter,
    import_corrections,
    load_corrections,
    open_store,
)
from cloud_stream.datasets.corrections import parse_corrections

from .conftest import jpeg, meta


@pytest.fixture
def pooled(config):
    writer = SampleWriter(config)
    metas = [meta() for _ in range(3)]
    for m in metas:
        writer.add(jpeg(), m)
    return config, [m.frame_id for m in metas]


def test_csv_import_is_stored_and_loaded(pooled, tmp_path):
    config, ids = pooled
    path = tmp_path / "fix.csv"
    path.write_text(f"id,label,who\n{ids[0]},scratch,ann\n\n{ids[1]},ok,bob\n")
    report = import_corrections(config, path)
    assert report.stored == 2
    assert report.unknown == []
    assert load_corrections(open_store(config)) == {ids[0]: "scratch", ids[1]: "ok"}


@pytest.mark.parametrize("shape", ["object", "list"])
def test_json_import(pooled, tmp_path, shape):
    config, ids = pooled
    data = {ids[0]: "ok"} if shape == "object" else [{"id": ids[0], "label": "ok", "note": "x"}]
    path = tmp_path / "fix.json"
    path.write_text(json.dumps(data, indent=2))
    assert import_corrections(config, path).stored == 1
    assert load_corrections(open_store(config)) == {ids[0]: "ok"}


def test_later_imports_win_and_earlier_files_stay(pooled, tmp_path):
    config, ids = pooled
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(f"id,label\n{ids[0]},scratch\n{ids[1]},scratch\n")
    second.write_text(f"id,label\n{ids[0]},ok\n")
    key1 = import_corrections(config, first).key
    content1 = open_store(config).get(key1)
    key2 = import_corrections(config, second).key
    assert key1 != key2
    assert open_store(config).get(key1) == content1  # append-only: never rewritten
    assert load_corrections(open_store(config)) == {ids[0]: "ok", ids[1]: "scratch"}


def test_bad_csv_rows_are_reported_with_lines_and_nothing_is_stored(pooled, tmp_path):
    config, ids = pooled
    path = tmp_path / "fix.csv"
    path.write_text(
        "id,label\n"
        f"{ids[0]},ok\n"  # line 2: good
        f"{ids[1]},not a label\n"  # line 3
        "short,ok\n"  # line 4: id too short
        f"{ids[2]}\n"  # line 5: one column
        f"{ids[0]},scratch\n"  # line 6: conflicts with line 2
    )
    with pytest.raises(CorrectionsError) as info:
        import_corrections(config, path)
    problems = info.value.problems
    assert len(problems) == 4
    assert problems[0].startswith(f"{path}:3: label 'not a label'")
    assert problems[1].startswith(f"{path}:4: id 'short'")
    assert problems[2].startswith(f"{path}:5: 1 columns")
    assert problems[3].startswith(f"{path}:6: {ids[0]} is labelled 'scratch' here and 'ok'")
    assert load_corrections(open_store(config)) == {}


def test_unknown_ids_refuse_the_file_unless_skipped(pooled, tmp_path):
    config, ids = pooled
    path = tmp_path / "fix.csv"
    path.write_text(f"id,label\n{ids[0]},ok\nffffffffffffffff,ok\n")
    with pytest.raises(CorrectionsError, match=rf"{path}:3: ffffffffffffffff is not in the pool"):
        import_corrections(config, path)
    assert load_corrections(open_store(config)) == {}
    report = import_corrections(config, path, skip_unknown=True)
    assert report.stored == 1
    assert report.unknown == [f"{path}:3: ffffffffffffffff"]


def test_json_problems_carry_lines(tmp_path):
    path = tmp_path / "fix.json"
    path.write_text('{\n  "aaaaaaaaaaaa": "ok",\n  "bbbbbbbbbbbb": "b a d"\n}\n')
    with pytest.raises(CorrectionsError, match=rf"{path}:3: label 'b a d' of bbbbbbbbbbbb"):
        parse_corrections(path)
    path.write_text('{\n  "aaaaaaaaaaaa": "ok",\n')
    with pytest.raises(CorrectionsError, match=rf"{path}:3: not valid JSON"):
        parse_corrections(path)
    path.write_text('[{"id": "aaaaaaaaaaaa"}, 3]')
    with pytest.raises(CorrectionsError) as info:
        parse_corrections(path)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "item [0]: expected an object with 'id' and 'label'",
        "item [1]: expected an object with 'id' and 'label'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("frame,label\nx,y\n", "needs the columns 'id' and 'label'"),
        ("id,label\n", "no corrections"),
    ],
)
def test_csv_shape_errors(tmp_path, text, message):
    path = tmp_path / "fix.csv"
    path.write_text(text)
    with pytest.raises(CorrectionsError, match=message):
        parse_corrections(path)


def test_missing_file(tmp_path):
    with pytest.raises(CorrectionsError, match="file not found"):
        parse_corrections(tmp_path / "nope.csv")


def test_declared_labels_are_enforced(tmp_path):
    path = tmp_path / "fix.csv"
    path.write_text("id,label\naaaaaaaaaaaa,rust\n")
    with pytest.raises(CorrectionsError, match="'rust' of aaaaaaaaaaaa is not one of"):
        import_corrections(DatasetConfig(root=str(tmp_path), labels=["ok", "dent"]), path)


def test_header_with_bom_and_spaces(tmp_path):
    path = tmp_path / "fix.txt"
    path.write_text("\ufeff ID , Label \naaaaaaaaaaaa, ok \n", encoding="utf-8")
    assert parse_corrections(path) == [(2, "aaaaaaaaaaaa", "ok")]
