"""A strict reader of one line of InfluxDB line protocol, for checking what the sink renders.

Written from the line-protocol reference, independently of the sink's code, so
a test that renders and reads back checks the escaping and types both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

_KEY_ESCAPABLE = ",= "


@dataclass
class Point:
    measurement: str
    tags: dict[str, str]
    tag_order: list[str]
    fields: dict[str, float | int | str | bool]
    ts: int


class _Reader:
    def __init__(self, line: str):
        self.line = line
        self.i = 0

    def peek(self) -> str:
        if self.i >= len(self.line):
            raise ValueError(f"unexpected end of line at {self.i}: {self.line!r}")
        return self.line[self.i]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} at {self.i}: {self.line!r}")
        self.i += 1

    def key(self, stops: str) -> str:
        """A measurement, tag key/value or field key: backslash escapes ',', '=', ' '."""
        out = []
        line = self.line
        while self.i < len(line) and line[self.i] not in stops:
            char = line[self.i]
            if char == "\n":
                raise ValueError(f"raw newline in a key at {self.i}: {line!r}")
            if char == "\\" and self.i + 1 < len(line) and line[self.i + 1] in _KEY_ESCAPABLE:
                out.append(line[self.i + 1])
                self.i += 2
            else:
                out.append(char)
                self.i += 1
        text = "".join(out)
        if not text:
            raise ValueError(f"empty key at {self.i}: {line!r}")
        return text

    def string(self) -> str:
        self.expect('"')
        out = []
        while True:
            char = self.peek()
            if char == '"':
                self.i += 1
                return "".join(out)
            if char == "\\" and self.line[self.i + 1 : self.i + 2] in ('"', "\\"):
                out.append(self.line[self.i + 1])
                self.i += 2
            else:
                out.append(char)
                self.i += 1

    def value(self) -> float | int | str | bool:
        if self.peek() == '"':
            return self.string()
        start = self.i
        while self.i < len(self.line) and self.line[self.i] not in ", ":
            self.i += 1
        raw = self.line[start : self.i]
        if raw.endswith("i"):
            return int(raw[:-1])
        if raw in ("t", "T", "true", "True", "f", "F", "false", "False"):
            return raw.lower().startswith("t")
        if not any(c in raw for c in ".eE") or any(c.isalpha() for c in raw.replace("e", "")):
            raise ValueError(f"{raw!r} is not a float InfluxDB reads as one: {self.line!r}")
        return float(raw)


def parse_line(line: str) -> Point:
    """Read one line; raises ValueError on anything line protocol does not allow."""
    r = _Reader(line)
    measurement = r.key(", ")
    tags: dict[str, str] = {}
    order: list[str] = []
    while r.peek() == ",":
        r.i += 1
        key = r.key("=")
        r.expect("=")
        tags[key] = r.key(", ")
        order.append(key)
    r.expect(" ")
    fields: dict[str, float | int | str | bool] = {}
    while True:
        key = r.key("=")
        r.expect("=")
        if key in fields:
            raise ValueError(f"field {key!r} twice: {line!r}")
        fields[key] = r.value()
        if r.peek() == " ":
            break
        r.expect(",")
    r.expect(" ")
    ts_text = line[r.i :]
    if not ts_text.lstrip("-").isdigit():
        raise ValueError(f"bad timestamp {ts_text!r}: {line!r}")
    return Point(measurement, tags, order, fields, int(ts_text))
