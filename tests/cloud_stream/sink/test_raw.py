"""count_points builds the right Flux; the counting itself is checked against InfluxDB."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cloud_stream.sink.raw import count_points


class FakeClient:
    """Records the Flux and answers one table with one count record."""

    org = "acme"

    def __init__(self, counts: list[int], column: str):
        self.queries: list[str] = []
        self._counts = counts
        self._column = column

    def query_api(self) -> Any:
        def query(flux: str, org: str) -> list[Any]:
            assert org == "acme"
            self.queries.append(flux)
            records = [SimpleNamespace(values={self._column: c}) for c in self._counts]
            return [SimpleNamespace(records=records)]

        return SimpleNamespace(query=query)


def test_counts_one_always_present_field():
    client = FakeClient([7], "_value")
    assert count_points(client, "b", "result", 1_000) == 7
    (flux,) = client.queries
    assert 'from(bucket: "b")' in flux
    assert "range(start: time(v: 1000))" in flux
    assert 'r._measurement == "result"' in flux
    assert 'r._field == "seq"' in flux
    assert "group()" in flux


def test_measurements_without_a_required_field_are_pivoted():
    client = FakeClient([3, 4], "_measurement")
    assert count_points(client, "b", "drift", "-1h", stop="now()") == 7
    (flux,) = client.queries
    assert "range(start: -1h, stop: now())" in flux
    assert "pivot(" in flux
    assert "_field ==" not in flux


def test_an_explicit_field_and_quoting():
    client = FakeClient([], "_value")
    assert count_points(client, 'we"ird', "fleet", 0, field="state") == 0
    assert 'from(bucket: "we\\"ird")' in client.queries[0]
    assert 'r._field == "state"' in client.queries[0]
