"""Plain-text tables and cell formats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_stream.ops.table import (
    format_age,
    format_number,
    format_time,
    render_table,
    sanitize,
    text_width,
)


def test_columns_are_aligned():
    out = render_table(["name", "n"], [["a", "1"], ["longer", "22"]], right=["n"])
    assert out.splitlines() == [
        "name     n",
        "a        1",
        "longer  22",
    ]


def test_no_trailing_spaces_and_no_trailing_newline():
    out = render_table(["a", "b"], [["x", ""], ["", "y"]])
    assert not out.endswith("\n")
    assert all(line == line.rstrip() for line in out.splitlines())
    assert out.splitlines()[1] == "x"


def test_headers_alone():
    assert render_table(["time", "rule"], []) == "time  rule"


def test_long_cells_are_cut_with_an_ellipsis():
    out = render_table(["id", "summary"], [["1", "x" * 50]], max_widths={"summary": 10})
    row = out.splitlines()[1]
    assert row.endswith("x" * 9 + "…")
    assert text_width(row) == len("id  ") + 10


def test_row_of_the_wrong_length_is_an_error():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 headers"):
        render_table(["a", "b"], [["1", "2"], ["3"]])


def test_control_characters_never_reach_the_terminal():
    evil = "ok\x1b[31mred\nnext\rline\x07\u202e"
    out = render_table(["summary"], [[evil]])
    assert "\x1b" not in out
    assert "\r" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    assert len(out.splitlines()) == 2
    assert "ok\\x1b[31mred\\x0anext\\x0dline\\x07\\u202e" in out


@given(st.lists(st.lists(st.text(), min_size=2, max_size=2), max_size=5))
def test_every_row_is_one_line(rows):
    out = render_table(["a", "b"], rows)
    lines = out.split("\n")
    assert len(lines) == len(rows) + 1
    assert all(len(line.splitlines()) <= 1 for line in lines)  # no \r, \x85, \u2028...


def test_wide_characters_count_twice():
    assert text_width("検査") == 4
    out = render_table(["site", "x"], [["検査", "1"], ["ab", "2"]])
    lines = out.splitlines()
    # The second column starts at the same terminal column on both rows.
    assert text_width(lines[1][: lines[1].index("1")]) == 6
    assert text_width(lines[2][: lines[2].index("2")]) == 6


def test_sanitize_keeps_ordinary_text():
    assert sanitize("plant-a/l1 é 検査 ok") == "plant-a/l1 é 検査 ok"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s ago"),
        (12.7, "12s ago"),
        (59, "59s ago"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (7200, "2h ago"),
        (86_400 * 3 + 5, "3d ago"),
        (None, "-"),
        (-0.5, "0s ago"),  # clocks a little apart
        (-30, "in the future"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (3, "3"),
        (3.0, "3"),
        (0.05, "0.05"),
        (0.123456, "0.1235"),
        (True, "true"),
        ("x", "x"),
        (float("nan"), "nan"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_format_time_is_utc_iso():
    tz = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 31, 14, 0, 5, 999, tzinfo=tz)) == "2026-01-31T12:00:05Z"
    assert format_time(None) == "-"
