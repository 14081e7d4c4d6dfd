"""Flux building: string escaping, durations and the queries of the operator tools."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_stream.ops.flux import (
    AlertQuery,
    alerts_flux,
    fleet_flux,
    flux_duration,
    flux_string,
    parse_duration,
)


def decode_flux_string(literal: str) -> str:
    """A strict reader of the literals ``flux_string`` may write.

    Fails on anything that could end the literal early or start an interpolation:
    a bare quote, a bare ``$``, a backslash not followed by ``"``, ``\\`` or
    ``xHH``, and any character but printable ASCII.
    """
    assert literal[0] == '"'
    assert literal[-1] == '"'
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                out.append(int(body[i + 2 : i + 4], 16))
                i += 4
            else:
                assert nxt in '"\\', f"escape \\{nxt} in {literal!r}"
                out += nxt.encode()
                i += 2
        else:
            assert ch not in '"$', f"bare {ch} in {literal!r}"
            assert 0x20 <= ord(ch) < 0x7F, f"{ch!r} in {literal!r}"
            out += ch.encode()
            i += 1
    return out.decode("utf-8")


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plant-a", '"plant-a"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\\", '"a\\\\"'),
        ("a\nb", '"a\\x0ab"'),
        ("a\r\tb", '"a\\x0d\\x09b"'),
        ("${x}", '"\\x24{x}"'),
        ('$"', '"\\x24\\""'),
        ("é", '"\\xc3\\xa9"'),
        ("", '""'),
    ],
)
def test_flux_string_escapes(value, literal):
    assert flux_string(value) == literal


@given(st.text())
def test_flux_string_round_trips_and_cannot_break_out(value):
    literal = flux_string(value)
    assert "\n" not in literal
    assert decode_flux_string(literal) == value


@given(st.text(alphabet='"\\$\n{}x', max_size=30))
def test_flux_string_on_quote_heavy_text(value):
    assert decode_flux_string(flux_string(value)) == value


def test_flux_string_rejects_lone_surrogates():
    with pytest.raises(ValueError, match="not valid text"):
        flux_string("a\udcff")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1h30m", 5400),
        (" 2H ", 7200),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "1.5h", "1h 30m", "0s", "0h0m", "1 h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match=r"duration|zero"):
        parse_duration(text)


def test_parse_duration_error_says_how():
    with pytest.raises(ValueError, match="90s, 30m, 1h, 2d"):
        parse_duration("an hour")


@given(st.integers(min_value=1, max_value=10**7), st.sampled_from("smhdw"))
def test_parse_duration_property(n, unit):
    sizes = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    assert parse_duration(f"{n}{unit}").total_seconds() == n * sizes[unit]


def test_flux_duration():
    assert flux_duration(timedelta(hours=1)) == "3600s"
    assert flux_duration(timedelta(milliseconds=10)) == "1s"


def _lines(flux: str) -> list[str]:
    return [line.strip() for line in flux.splitlines()]


def test_alerts_flux_plain():
    lines = _lines(alerts_flux(AlertQuery(bucket="edgeloop", since=timedelta(hours=1))))
    assert lines == [
        'from(bucket: "edgeloop")',
        "|> range(start: -3600s, stop: 1h)",
        '|> filter(fn: (r) => r._measurement == "alert")',
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        "|> group()",
        '|> sort(columns: ["_time"], desc: true)',
    ]


def test_alerts_flux_filters():
    query = AlertQuery(
        bucket="b",
        since=timedelta(minutes=5),
        severities=("warning", "critical"),
        sites=("plant-a", "plant-b"),
        lines=("l1",),
        subjects=("cam-01",),
        rules=("defect-rate",),
        state="firing",
        limit=10,
    )
    lines = _lines(alerts_flux(query))
    assert '|> filter(fn: (r) => r.severity == "warning" or r.severity == "critical")' in lines
    assert '|> filter(fn: (r) => r.site == "plant-a" or r.site == "plant-b")' in lines
    assert '|> filter(fn: (r) => r.line == "l1")' in lines
    assert '|> filter(fn: (r) => r.subject == "cam-01")' in lines
    assert '|> filter(fn: (r) => r.rule == "defect-rate")' in lines
    assert '|> filter(fn: (r) => r.state == "firing")' in lines
    # Filters on tags come before the pivot, so InfluxDB can push them down.
    assert lines.index('|> filter(fn: (r) => r.state == "firing")') < lines.index(
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    assert lines[-1] == "|> limit(n: 10)"


def test_alerts_flux_open_takes_the_latest_event_of_each_alert_first():
    query = AlertQuery(
        bucket="b", since=timedelta(days=7), severities=("critical",), open_only=True
    )
    lines = _lines(alerts_flux(query))
    group = lines.index('|> group(columns: ["site", "line", "subject", "rule", "scope"])')
    last = lines.index('|> last(column: "_time")')
    firing = lines.index('|> filter(fn: (r) => r.state == "firing")')
    severity = lines.index('|> filter(fn: (r) => r.severity == "critical")')
    assert group < last < firing < severity
    assert lines.count('|> filter(fn: (r) => r.state == "firing")') == 1


def test_alerts_flux_escapes_every_user_value():
    evil = '") |> drop(columns: ["x"]) //'
    query = AlertQuery(
        bucket=evil,
        since=timedelta(hours=1),
        sites=(evil,),
        lines=(evil,),
        subjects=(evil,),
        rules=(evil,),
    )
    flux = alerts_flux(query)
    assert flux.count(flux_string(evil)) == 5
    assert "drop(" not in flux.replace(flux_string(evil), "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"severities": ("fatal",)}, "unknown severity"),
        ({"limit": 0}, "limit"),
        ({"open_only": True, "state": "resolved"}, "never resolved"),
    ],
)
def test_alert_query_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlertQuery(bucket="b", since=timedelta(hours=1), **kwargs)


def test_fleet_flux():
    lines = _lines(fleet_flux("edge loop", since=timedelta(days=30), sites=("plant-a",)))
    assert lines[0] == 'from(bucket: "edge loop")'
    assert lines[1] == "|> range(start: -2592000s, stop: 1h)"
    assert '|> filter(fn: (r) => r._measurement == "fleet")' in lines
    assert '|> filter(fn: (r) => r.site == "plant-a")' in lines
    assert lines.index("|> last()") < lines.index(
        '|> pivot(rowKey: ["site", "device"], columnKey: ["_field"], valueColumn: "_value")'
    )


def test_fleet_flux_without_site_has_no_site_filter():
    assert "r.site" not in fleet_flux("b", since=timedelta(days=1))
