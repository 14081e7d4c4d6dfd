"""The Grafana overview dashboard: valid JSON that asks only for what docs/influxdb.md defines.

Its Flux runs against a real InfluxDB in tests/integration/test_ops_cli.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BOARD = ROOT / "compose/grafana/dashboards/edgeloop-overview.json"
DATASOURCES = ROOT / "compose/grafana/provisioning/datasources/influxdb.yaml"
DOCS = ROOT / "docs/influxdb.md"


def _contract() -> dict[str, tuple[set[str], set[str]]]:
    """measurement -> (tags, fields), read from the table in docs/influxdb.md."""
    out = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]):
            tags = set(re.findall(r"`(\w+)`", cells[1]))
            fields = set(re.findall(r"`(\w+)`", cells[2]))
            out[cells[0].strip("`")] = (tags, fields)
    return out


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(BOARD.read_text())


@pytest.fixture(scope="module")
def contract() -> dict[str, tuple[set[str], set[str]]]:
    found = _contract()
    assert {"result", "alert", "drift", "fleet"} <= set(found), found  # the parser works
    return found


def _queries(board: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["query"]) for p in board["panels"] for t in p["targets"]]


def test_identity_and_layout(board):
    assert board["uid"] == "edgeloop-overview"
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]


def test_uid_is_not_taken_by_another_dashboard(board):
    others = [
        json.loads(p.read_text())["uid"]
        for p in BOARD.parent.glob("*.json")
        if p.name != BOARD.name
    ]
    assert board["uid"] not in others


def test_panels_use_the_provisioned_flux_datasource(board):
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    flux_uids = {s["uid"] for s in sources if s["jsonData"].get("version") == "Flux"}
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] in flux_uids, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] in flux_uids


def test_every_query_names_measurements_and_fields_of_the_contract(board, contract):
    for title, query in _queries(board):
        assert 'from(bucket: "edgeloop")' in query, title
        measurements = re.findall(r'r\._measurement == "(\w+)"', query)
        assert measurements, f"{title}: no measurement"
        for name in measurements:
            assert name in contract, f"{title}: {name} is not in docs/influxdb.md"
        tags = set().union(*(contract[m][0] for m in measurements))
        fields = set().union(*(contract[m][1] for m in measurements))
        for field in re.findall(r'r\._field == "(\w+)"', query):
            assert field in fields, f"{title}: field {field} is not in docs/influxdb.md"
        for tag in re.findall(r"r\.(\w+) ==", query):
            if tag not in ("_measurement", "_field", "state"):
                assert tag in tags, f"{title}: tag {tag} is not in docs/influxdb.md"


def test_the_dashboard_covers_kpis_alerts_drift_and_fleet(board):
    covered = {m for _, q in _queries(board) for m in re.findall(r'_measurement == "(\w+)"', q)}
    assert covered == {"result", "alert", "drift", "fleet"}
    types = {p["type"] for p in board["panels"]}
    assert "table" in types
    assert "timeseries" in types


def test_template_variables_site_and_line(board):
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"site", "line"}
    for var in variables.values():
        assert var["datasource"]["uid"] == "edgeloop-influxdb"
        assert var["multi"]
        assert var["includeAll"]
    assert "${site:json}" in variables["line"]["query"]  # lines follow the chosen sites


def test_every_variable_used_is_defined(board):
    names = {v["name"] for v in board["templating"]["list"]}
    texts = [q for _, q in _queries(board)] + [v["query"] for v in board["templating"]["list"]]
    used = {m for t in texts for m in re.findall(r"\$\{(\w+)", t)}
    assert used
    assert used <= names
    for title, query in _queries(board):
        assert "${site:json}" in query, f"{title} ignores the site variable"
