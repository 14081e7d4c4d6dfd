"""``edgeloop alerts`` and ``edgeloop fleet`` against a real InfluxDB, and the dashboard's Flux.

Points are written as raw line protocol in the shape of docs/influxdb.md into a
bucket of the test's own; the CLI reads them with the operator token.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from influxdb_client.client.write_api import SYNCHRONOUS

from pipeline.cli.main import main
from tests.integration.helpers import free_port

S = 1_000_000_000
DASHBOARD = (
    Path(__file__).resolve().parents[2] / "compose/grafana/dashboards/edgeloop-overview.json"
)


def _alert(now, ago_s, *, site, subject, rule, severity, state, scope, line=None, seq, **fields):
    tags = f"site={site}" + (f",line={line}" if line else "")
    tags += f",subject={subject},rule={rule},severity={severity},state={state},scope={scope}"
    body = {"summary": f'"{rule} {state} on {subject}"', "id": f'"a{seq}"', "seq": f"{seq}i"}
    body.update({"value": "0.2", "threshold": "0.1"})
    body.update(fields)
    return f"alert,{tags} {','.join(f'{k}={v}' for k, v in body.items())} {now - ago_s * S}"


def _alerts(now):
    line_a = {"site": "plant-a", "line": "l1"}
    return [
        # A line's defect rate fired and then cleared: closed.
        _alert(now, 50 * 60, **line_a, subject="l1", rule="defect-rate", severity="critical",
               state="firing", scope="line", seq=1),
        _alert(now, 40 * 60, **line_a, subject="l1", rule="defect-rate", severity="critical",
               state="resolved", scope="line", seq=2, value="0.05"),
        # A sensor anomaly still firing, with a label.
        _alert(now, 30 * 60, **line_a, subject="cam-01", rule="sensor", severity="warning",
               state="firing", scope="device", seq=3, label_sensor='"temp"'),
        # A device of another site without a line, offline, still firing.
        _alert(now, 20 * 60, site="plant-b", subject="cam-09", rule="offline",
               severity="critical", state="firing", scope="device", seq=4, value="600",
               threshold="300"),
        # Fired three hours ago, never resolved: only --open (7 days by default) finds it.
        _alert(now, 3 * 3600, site="plant-a", line="l2", subject="l2", rule="defect-rate",
               severity="info", state="firing", scope="line", seq=5),
    ]  # fmt: skip


def _fleet(now, ago_s, site, device, **fields):
    body = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"fleet,site={site},device={device} {body} {now - ago_s * S}"


def _device(now, seen_ago_s, state, model, software, outbox, escalation, results):
    return {
        "state": f'"{state}"',
        "model": f'"{model}"',
        "software": f'"{software}"',
        "last_seen_ns": f"{now - seen_ago_s * S}i",
        "outbox_depth": outbox,
        "escalation_rate": escalation,
        "results": f"{results}i",
    }


def _fleet_rows(now):
    return [
        # An older row of cam-01: its values must lose to the newer ones.
        _fleet(now, 300, "plant-a", "cam-01",
               **_device(now, 300, "degraded", "defects@2", "1.1.0", "40", "0.5", 100)),
        _fleet(now, 10, "plant-a", "cam-01",
               **_device(now, 10, "online", "defects@3", "1.2.0", "0", "0.05", 1200)),
        # Only the outbox changed since: the other fields keep their last values.
        _fleet(now, 5, "plant-a", "cam-01", outbox_depth="3"),
        _fleet(now, 1200, "plant-a", "cam-02",
               **_device(now, 1200, "offline", "defects@3", "1.2.0", "17", "0.1", 50)),
        _fleet(now, 5, "plant-b", "cam-09",
               **_device(now, 5, "online", "sensor-ae@1", "1.2.0", "0", "0", 7)),
    ]  # fmt: skip


@pytest.fixture
def writer(influx_credentials):
    """A client with the operator token, for writing test points."""
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(
        url=influx_credentials.url,
        token=influx_credentials.operator_token,
        org=influx_credentials.org,
    ) as client:
        yield client


@pytest.fixture
def now():
    return time.time_ns()


@pytest.fixture
def bucket(influx_bucket, writer, now):
    """A bucket holding the alert and fleet points above."""
    write = writer.write_api(write_options=SYNCHRONOUS)
    write.write(bucket=influx_bucket, record=_alerts(now) + _fleet_rows(now))
    return influx_bucket


@pytest.fixture
def run(bucket, influx_credentials, capsys, monkeypatch):
    """``run("alerts", "--json")`` -> (exit code, stdout, stderr) against the test bucket."""
    monkeypatch.delenv("EDGELOOP_INFLUX_TOKEN", raising=False)

    def go(command, *args, connect=True):
        conn = []
        if connect:
            conn = ["--url", influx_credentials.url, "--org", influx_credentials.org]
            conn += ["--bucket", bucket, "--token", influx_credentials.operator_token]
        code = main([command, *args, *conn])
        out, err = capsys.readouterr()
        return code, out, err

    return go


def _json(run, *args):
    code, out, err = run("alerts", "--json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _seqs(rows):
    return [r["seq"] for r in rows]


# --- alerts -------------------------------------------------------------------------
def test_alerts_table_lists_the_last_hour_newest_first(run):
    code, out, err = run("alerts")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "time", "severity", "state", "rule", "subject", "site/line", "value/threshold", "summary"
    ]  # fmt: skip
    body = lines[1:]
    assert len(body) == 4
    assert [line.split()[4] for line in body] == ["cam-09", "cam-01", "l1", "l1"]
    assert body[0].split()[5] == "plant-b"  # no line: the site alone
    assert body[1].split()[5] == "plant-a/l1"
    assert body[0].split()[6] == "600/300"
    assert [line.split()[2] for line in body] == ["firing", "firing", "resolved", "firing"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body[0].split()[0])
    assert "offline firing on cam-09" in body[0]


def test_alerts_json_lines_carry_every_field(run):
    rows = _json(run)
    assert _seqs(rows) == [4, 3, 2, 1]
    sensor = rows[1]
    assert sensor["rule"] == "sensor"
    assert sensor["severity"] == "warning"
    assert sensor["scope"] == "device"
    assert sensor["subject"] == "cam-01"
    assert sensor["line"] == "l1"
    assert sensor["labels"] == {"sensor": "temp"}
    assert sensor["value"] == pytest.approx(0.2)
    assert sensor["id"] == "a3"
    assert sensor["time"].endswith("Z")
    assert rows[0]["line"] is None
    assert rows[0]["labels"] == {}


def test_alerts_since(run):
    assert _seqs(_json(run, "--since", "35m")) == [4, 3]
    assert _seqs(_json(run, "--since", "4h")) == [4, 3, 2, 1, 5]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--severity", "critical"], [4, 2, 1]),
        (["--severity", "info,warning", "--since", "4h"], [3, 5]),
        (["--severity", "info", "--severity", "warning", "--since", "4h"], [3, 5]),
        (["--min-severity", "warning", "--since", "4h"], [4, 3, 2, 1]),
        (["--site", "plant-b"], [4]),
        (["--site", "plant-a", "--line", "l1"], [3, 2, 1]),
        (["--device", "cam-01"], [3]),
        (["--rule", "defect-rate", "--since", "4h"], [2, 1, 5]),
        (["--state", "resolved"], [2]),
        (["--state", "firing"], [4, 3, 1]),
        (["--limit", "2"], [4, 3]),
    ],
)
def test_alerts_filters(run, args, expected):
    assert _seqs(_json(run, *args)) == expected


def test_open_alerts_leave_out_the_resolved_ones(run):
    # 7 days by default: the alert of three hours ago is still open.
    assert _seqs(_json(run, "--open")) == [4, 3, 5]
    assert _seqs(_json(run, "--open", "--since", "1h")) == [4, 3]
    assert _seqs(_json(run, "--open", "--min-severity", "critical")) == [4]
    assert _seqs(_json(run, "--open", "--site", "plant-a")) == [3, 5]


def test_open_alert_resolved_at_a_higher_severity_is_closed(run, writer, bucket, now):
    line = _alert(now, 60, site="plant-a", subject="cam-01", line="l1", rule="sensor",
                  severity="critical", state="resolved", scope="device", seq=6)  # fmt: skip
    writer.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record=line)
    assert _seqs(_json(run, "--open")) == [4, 5]


@pytest.mark.parametrize(
    "evil",
    [
        'plant-a" or r.site != "',
        '$" or true or "',
        'plant-a\\" or r.site != \\"',
        'plant-a"\n  |> drop(columns: ["site"])\n  |> filter(fn: (r) => r.site != "',
        'plant-a" or r.site =~ /.*/ or r.site == "${x}',
        # Breaks a string that escapes only quotes and backslashes: "$\" ends it.
        '$" or true)\n//',
    ],
)
def test_filter_values_cannot_inject_flux(run, evil):
    code, out, err = run("alerts", "--json", "--since", "4h", "--site", evil)
    assert (code, out) == (0, ""), err


def test_empty_result_says_so(run):
    code, out, _ = run("alerts", "--site", "nowhere")
    assert code == 0
    assert out.strip() == "no alerts in the last 1h matching the filters"


def test_config_file_influx_section(run, influx_credentials, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TEST_TOKEN", influx_credentials.operator_token)
    monkeypatch.delenv("OPS_UNSET_VAR", raising=False)
    config = tmp_path / "cloud.yaml"
    config.write_text(
        "kafka:\n  sasl_password: ${OPS_UNSET_VAR}\n"  # another section's problem, not ours
        "influx:\n"
        f"  url: {influx_credentials.url}\n"
        f"  org: {influx_credentials.org}\n"
        f"  bucket: {bucket}\n"
        "  token: ${OPS_TEST_TOKEN}\n"
    )
    code, out, err = run("alerts", "--json", "--config", str(config), connect=False)
    assert code == 0, err
    assert _seqs([json.loads(line) for line in out.splitlines()]) == [4, 3, 2, 1]


def test_invalid_config_section_names_the_field(run, tmp_path):
    config = tmp_path / "cloud.yaml"
    config.write_text("influx:\n  url: localhost:8086\n  colour: blue\n")
    code, _, err = run("alerts", "--config", str(config), connect=False)
    assert code == 1
    assert str(config) in err
    assert "influx.url" in err
    assert "influx.colour" in err


def test_unreachable_influxdb_is_a_clear_error(run, influx_credentials):
    url = f"http://127.0.0.1:{free_port()}"
    for command in ("alerts", "fleet"):
        code, out, err = run(
            command, "--url", url, "--token", influx_credentials.operator_token, connect=False
        )
        assert code == 1
        assert out == ""
        assert f"InfluxDB at {url}: cannot reach InfluxDB" in err
        assert "hint:" in err


def test_wrong_token_is_a_clear_error(run, influx_credentials):
    code, _, err = run("alerts", "--url", influx_credentials.url, "--token", "no-such-token",
                       connect=False)  # fmt: skip
    assert code == 1
    assert "refused the token" in err
    assert "--token" in err


def test_missing_bucket_is_a_clear_error(run, influx_credentials, unique):
    code, _, err = run("alerts", "--url", influx_credentials.url, "--bucket", f"{unique}-none",
                       "--token", influx_credentials.operator_token, connect=False)  # fmt: skip
    assert code == 1
    assert "not found" in err
    assert "--bucket" in err


# --- fleet --------------------------------------------------------------------------
def _fleet_json(run, *args):
    code, out, err = run("fleet", "--json", *args)
    assert code == 0, err
    return {(d["site"], d["device"]): d for d in map(json.loads, out.splitlines())}


def test_fleet_one_row_per_device_with_the_last_value_of_each_field(run):
    rows = _fleet_json(run)
    assert list(rows) == [("plant-a", "cam-01"), ("plant-a", "cam-02"), ("plant-b", "cam-09")]
    cam1 = rows["plant-a", "cam-01"]
    assert cam1["state"] == "online"
    assert cam1["model"] == "defects@3"
    assert cam1["software"] == "1.2.0"
    assert cam1["outbox_depth"] == 3
    assert cam1["escalation_rate"] == pytest.approx(0.05)
    assert cam1["results"] == 1200
    assert cam1["age_s"] >= 10
    assert cam1["stale"] is False
    assert rows["plant-a", "cam-02"]["stale"] is True


def test_fleet_stale_after(run):
    assert not any(d["stale"] for d in _fleet_json(run, "--stale-after", "30m").values())
    stale = {k for k, d in _fleet_json(run, "--stale-after", "2s").items() if d["stale"]}
    assert ("plant-a", "cam-02") in stale
    assert ("plant-a", "cam-01") in stale


def test_fleet_site_filter(run):
    assert list(_fleet_json(run, "--site", "plant-b")) == [("plant-b", "cam-09")]


def test_fleet_table(run):
    code, out, err = run("fleet")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["site", "device", "state", "model", "software"]
    rows = {line.split()[1]: line for line in lines[1:4]}
    assert set(rows) == {"cam-01", "cam-02", "cam-09"}
    assert re.search(r"\b\d+m ago\b", rows["cam-02"])
    assert rows["cam-02"].rstrip().endswith("STALE")
    assert not rows["cam-01"].rstrip().endswith("STALE")
    assert "defects@3" in rows["cam-01"]
    assert lines[-1] == "3 devices, 1 stale"


# --- the Grafana dashboard's Flux ----------------------------------------------------
def _dashboard_points(now):
    out = []
    for i in range(20):
        ts = now - (20 - i) * 30 * S
        label = "ok" if i % 4 else "scratch"
        route = "audit" if i % 5 == 0 else "confident"
        out.append(
            f"result,site=plant-a,line=l1,device=cam-01,source=cam,model=defects,"
            f"model_version=3,task=classify,label={label},route={route} "
            f'score=0.9,margin=0.5,entropy=0.1,latency_ms=4.2,seq={i}i,id="r{i}",'
            f'frame_id="f{i}",action="none" {ts}'
        )
        out.append(
            f"drift,site=plant-a,device=cam-01,model=defects,model_version=3,class=_all "
            f"agreement=0.9,verdicts=10i,psi=0.05,results=100i {ts}"
        )
    return out


def _panel_queries():
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["query"]) for p in board["panels"] for t in p["targets"]] + [
        (f"variable {v['name']}", v["query"]) for v in board["templating"]["list"]
    ]


@pytest.mark.parametrize(("title", "query"), _panel_queries())
def test_dashboard_queries_run(bucket, writer, influx_credentials, now, title, query):
    writer.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record=_dashboard_points(now))
    # What Grafana does before sending a query: the v record and the template variables.
    flux = (
        query.replace('bucket: "edgeloop"', f'bucket: "{bucket}"')
        .replace("${site:json}", '["plant-a", "plant-b"]')
        .replace("${line:json}", '["l1", "l2"]')
    )
    if "v.time" in flux or "v.window" in flux:
        flux = "v = {timeRangeStart: -6h, timeRangeStop: now(), windowPeriod: 1m}\n" + flux
    header = [line for line in flux.splitlines() if line.startswith("import ")]
    body = [line for line in flux.splitlines() if not line.startswith("import ")]
    tables = writer.query_api().query("\n".join(header + body), org=influx_credentials.org)
    records = [r for t in tables for r in t.records]
    assert records, f"{title}: no rows"
    kept = re.search(r"keep\(columns: \[([^\]]*)\]\)", flux)
    for column in re.findall(r'"(\w+)"', kept.group(1)) if kept else []:
        assert any(r.values.get(column) is not None for r in records), f"{title}: {column}"


# --- escaping, checked by Flux itself ------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        'a"b',
        "a\\b",
        "a\\",
        '\\"',
        "${x}",
        '$"',
        "$\\",
        "$$",
        "tab\there",
        "\x00\x01\x1b[31m\x7f",
        "é 検査 🚀",
        '") |> drop(columns: ["_value"]) //',
    ],
)
def test_flux_reads_back_what_flux_string_wrote(writer, influx_credentials, value):
    from cloud_stream.ops.flux import flux_string

    flux = f'import "array"\narray.from(rows: [{{s: {flux_string(value)}}}])'
    tables = writer.query_api().query(flux, org=influx_credentials.org)
    assert [r.values["s"] for t in tables for r in t.records] == [value]
