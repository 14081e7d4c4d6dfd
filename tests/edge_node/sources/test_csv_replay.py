"""csv source: replay, rate inference, bad rows with file:line, open() errors, looping."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from edge_node.sources.base import REGISTRY, SensorBlock, SourceError
from edge_node.sources.csv_replay import CsvReplayConfig, CsvReplaySource


def _write(path: Path, rows: list[str], header: str = "t_s,a,b,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _good(n: int, rate: float = 100.0) -> list[str]:
    return [f"{i / rate},{i},{-i},{'normal' if i < n // 2 else 'fault'}" for i in range(n)]


def _source(path: Path, **kw: object) -> CsvReplaySource:
    fields: dict[str, object] = {"name": "rec", "path": str(path), "realtime": False}
    fields.update(kw)
    src = CsvReplaySource(CsvReplayConfig.model_validate(fields))
    src.open()
    return src


def _drain(src: CsvReplaySource, limit: int = 1000) -> list[SensorBlock]:
    out = []
    for _ in range(limit):
        b = src.read(timeout=0)
        if b is None:
            break
        out.append(b)
    return out


def test_registered_as_csv() -> None:
    assert REGISTRY["csv"] == (CsvReplayConfig, CsvReplaySource)


def test_replays_all_rows_in_blocks_with_inferred_rate_and_truth(tmp_path: Path) -> None:
    src = _source(_write(tmp_path / "r.csv", _good(10)), block=4)
    blocks = _drain(src)
    assert src.exhausted
    assert src.read(timeout=0) is None
    assert [b.values.shape for b in blocks] == [(4, 2), (4, 2), (2, 2)]
    assert blocks[0].channels == ("a", "b")
    assert blocks[0].rate_hz == pytest.approx(100.0)
    values = np.concatenate([b.values for b in blocks])
    np.testing.assert_array_equal(values[:, 0], np.arange(10))
    np.testing.assert_array_equal(values[:, 1], -np.arange(10))
    assert [b.truth for b in blocks] == ["normal", "normal", "fault"]
    assert blocks[1].ts_ns - blocks[0].ts_ns == round(4 / 100.0 * 1e9)
    assert blocks[1].extra["line"] == "6"
    assert src.errors == {}


def test_channel_selection_order_and_given_rate(tmp_path: Path) -> None:
    src = _source(_write(tmp_path / "r.csv", _good(6)), channels=["b", "a"], rate_hz=50.0, block=6)
    (block,) = _drain(src)
    assert block.channels == ("b", "a")
    assert block.rate_hz == 50.0
    np.testing.assert_array_equal(block.values[:, 1], np.arange(6))


def test_bad_rows_become_nan_are_counted_and_logged_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _good(6)
    rows[1] = "0.01,oops,-1,normal"  # line 3
    rows[3] = "0.03,3"  # line 5: too few columns
    path = _write(tmp_path / "bad.csv", rows)
    with caplog.at_level(logging.WARNING, logger="edge_node.sources.csv_replay"):
        (block,) = _drain(_source(path, block=6))
    v = block.values
    assert math.isnan(v[1, 0])
    assert v[1, 1] == -1
    assert np.isnan(v[3]).all()
    assert np.isfinite(np.delete(v, [1, 3], axis=0)).all()
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{path}:3" in m and "oops" in m for m in messages), messages


def test_bad_row_counts_and_log_rate_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [f"{i / 10},x,{i},normal" for i in range(20)]
    rows.append("2.0,1")
    path = _write(tmp_path / "bad.csv", rows)
    with caplog.at_level(logging.WARNING, logger="edge_node.sources.csv_replay"):
        src = _source(path, block=8, rate_hz=10.0)
        _drain(src)
    assert src.errors == {"not_a_number": 20, "missing_column": 1}
    assert len(caplog.records) == 1  # the rest are counted, not logged


def test_missing_file_is_a_source_error_with_where_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    src = CsvReplaySource(CsvReplayConfig(name="rec", path=str(path)))
    with pytest.raises(SourceError) as err:
        src.open()
    assert str(path) in str(err.value)
    assert err.value.hint


@pytest.mark.parametrize(
    ("header", "kw", "needle"),
    [
        ("time,a,b", {}, "'t_s'"),
        ("t_s,a,b", {"channels": ["a", "c"]}, "['c']"),
        ("t_s,label", {}, "(none found)"),
    ],
)
def test_header_without_required_columns_fails_at_open(
    tmp_path: Path, header: str, kw: dict[str, object], needle: str
) -> None:
    path = _write(tmp_path / "h.csv", ["0,1,2"], header=header)
    with pytest.raises(SourceError) as err:
        _source(path, **kw)
    assert f"{path}:1" in str(err.value)
    assert needle in str(err.value)


def test_rate_cannot_be_inferred_from_a_constant_time_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["0,1,2,normal", "0,1,2,normal"])
    with pytest.raises(SourceError, match="sample rate"):
        _source(path)


def test_loop_starts_again_and_never_ends(tmp_path: Path) -> None:
    src = _source(_write(tmp_path / "r.csv", _good(3)), block=2, loop=True)
    blocks = [src.read(timeout=0) for _ in range(5)]
    values = np.concatenate([b.values[:, 0] for b in blocks if b is not None])
    np.testing.assert_array_equal(values, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert not src.exhausted
    src.close()
    src.close()


def test_realtime_paces_blocks(tmp_path: Path) -> None:
    src = _source(_write(tmp_path / "r.csv", _good(10, rate=1.0)), block=5, realtime=True)
    assert src.read(timeout=0) is None  # the first block is due in 5 s
    assert not src.exhausted
    src.close()


def test_replays_a_machine_simulator_export(tmp_path: Path) -> None:
    from edge_node.sources.machine import export_csv

    export_csv(tmp_path, seconds=30, seed=0)
    src = _source(tmp_path / "test.csv", block=2048)
    blocks = _drain(src)
    assert len(blocks) == 30
    assert {b.truth for b in blocks} >= {"normal", "imbalance", "dropout"}
    assert blocks[0].channels == ("vibration_g", "temperature_c", "current_a")
    assert blocks[0].rate_hz == 2048.0  # exactly: the edge compares it with the model's rate
