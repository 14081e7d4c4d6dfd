"""The cloud worker end to end on the real stack, and its faults.

Simulated edge nodes (real ``edgeloop edge run`` processes) publish over
Mosquitto, a real bridge moves everything into Kafka, and a real worker
process re-checks frames, raises alerts, keeps dataset samples and writes
InfluxDB. Every message is counted: the points in InfluxDB must equal the
unique messages in Kafka, after crashes too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud_stream.sink.raw import count_points
from pipeline.errors import SchemaError
from pipeline.modelpkg import builtin_package
from pipeline.schemas import ResultV1, StatusV1, decode, encode, new_id, now_ns
from tests.integration.helpers import REPO, drain

pytestmark = pytest.mark.integration

RULES = """
rules:
  - id: defect_rate_high
    kind: defect_rate
    scope: line
    severity: warning
    window_s: 600
    step_s: 60
    threshold: 0.05
    min_samples: 20
    cooldown_s: 600
  - id: machine_anomaly
    kind: anomaly_sustained
    severity: critical
    for_windows: 3
    clear_windows: 5
    cooldown_s: 600
  - id: device_offline
    kind: device_offline
    severity: critical
    after_s: 3
    cooldown_s: 600
"""


def _influx(credentials: Any) -> Any:
    from influxdb_client import InfluxDBClient

    return InfluxDBClient(
        url=credentials.url, token=credentials.operator_token, org=credentials.org, timeout=30_000
    )


def _wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _edge_config(tmp_path: Path, site: str, device: str, frames: int) -> Path:
    cfg: dict[str, Any] = {
        "site": site,
        "device": device,
        "models": {
            "vision": {"package": "builtin:conveyor-int8"},
            "machine": {"package": "builtin:machine-anomaly-int8"},
        },
        "sources": [
            {
                "type": "sim.conveyor",
                "name": "conveyor1",
                "line": "line1",
                "seed": 11,
                "count": frames,
            },
            {
                "type": "sim.machine",
                "name": "press1",
                "line": "line1",
                "realtime": False,
                "duration_s": 30,
                "faults": [{"fault": "imbalance", "start_s": 8, "duration_s": 15}],
            },
        ],
        "router": {
            "frames_per_min": 6000,
            "burst": 1000,
            "audit_rate": 0.1,
            "audit_frames_per_min": 6000,
            "audit_burst": 1000,
            "seed": 5,
        },
        "outbox": {"path": str(tmp_path / f"{device}.db"), "max_mb": 64},
        "mqtt": {"host": "127.0.0.1", "port": 1883, "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "telemetry": {"interval_s": 1},
        "anomaly": {"every": 1},
        "metrics": {"enabled": False},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run_edge(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "edge",
            "run",
            "--config",
            str(config),
            "--exit-when-done",
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _unique_messages(records: list[Any]) -> dict[str, Any]:
    out = {}
    for r in records:
        try:
            msg = decode(r.value)
        except SchemaError:  # the junk this test put there on purpose
            continue
        out[msg.id] = msg
    return out


def test_edge_to_bridge_to_worker_finds_verdicts_alerts_samples_and_points(
    devstack: Any,
    unique: str,
    tmp_path: Path,
    bridge_settings: dict[str, Any],
    bridge_process_factory: Callable[..., Any],
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    influx_credentials: Any,
    kafka_producer_factory: Callable[..., Any],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    worker = worker_process_factory({**cloud_settings, "rules_file": str(rules)})
    worker.start(timeout=120)
    bridge = bridge_process_factory(bridge_settings)
    bridge.start()

    # Bad input straight into Kafka: the worker dead-letters it and carries on.
    producer = kafka_producer_factory()
    topics = cloud_settings["topics"]
    producer.send(topics["results"], key=b"junk-dev", value=b"{not json")
    future = json.dumps({"type": "result", "v": 99, "id": new_id(), "site": unique}).encode()
    producer.send(topics["results"], key=b"junk-dev", value=future)
    producer.send(topics["frames"], key=b"junk-dev", value=b"\xff\xd8broken", headers=[])
    producer.flush()

    devices = [f"{unique}-cam1", f"{unique}-cam2"]
    runs = [_run_edge(_edge_config(tmp_path, unique, d, frames=150)) for d in devices]
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:]

    bootstrap = devstack.kafka_bootstrap
    frames = drain(bootstrap, [topics["frames"]], expect=1, timeout=30)
    frame_ids = {dict(r.headers)["id"].decode() for r in frames if dict(r.headers).get("id")}
    assert frame_ids, "the edge nodes uploaded uncertain/audit frames"

    # Slow path: one verdict per uploaded frame, no more.
    def verdicts() -> dict[str, Any]:
        recs = drain(bootstrap, [topics["verdicts"]], expect=len(frame_ids), timeout=10, idle_s=1)
        return _unique_messages(recs)

    _wait_for("a verdict per frame", lambda: len(verdicts()) >= len(frame_ids), 120, 2)
    by_frame = {v.frame_id: v for v in verdicts().values()}
    assert set(by_frame) == frame_ids
    assert all(v.teacher_model.name == "conveyor-teacher" for v in by_frame.values())

    # Alerts: line defect rate, sustained machine anomaly and offline for each device.
    def alerts() -> list[Any]:
        recs = drain(bootstrap, [topics["alerts"]], expect=1, timeout=5, idle_s=1)
        return list(_unique_messages(recs).values())

    def fired(rule: str, subject: str) -> bool:
        return any(a.rule == rule and a.device == subject and a.state == "firing" for a in alerts())

    _wait_for("defect rate alert", lambda: fired("defect_rate_high", "line1"), 60, 2)
    for d in devices:
        _wait_for(f"anomaly alert {d}", lambda d=d: fired("machine_anomaly", d), 60, 2)
        _wait_for(f"offline alert {d}", lambda d=d: fired("device_offline", d), 60, 2)

    # Dead letters: both bad records, with their reasons.
    dlq = drain(bootstrap, [topics["dlq"]], expect=3, timeout=30)
    reasons = {dict(r.headers)["dlq.reason"].decode() for r in dlq}
    assert "not_json" in reasons
    assert "unknown_type" in reasons, "a schema version the worker does not know"
    assert future in {r.value for r in dlq}, "dead letters keep the original bytes"
    assert reasons & {"corrupt_frame", "unknown_type", "invalid"}, reasons

    # Dataset: uncertain frames and disagreements the teacher is sure enough about.
    expected_samples = {
        v.frame_id
        for v in by_frame.values()
        if (v.reason == "uncertain" or not v.agree) and v.teacher_score >= 0.6
    }
    from cloud_stream.datasets.config import DatasetConfig
    from cloud_stream.datasets.snapshot import pool_stats

    ds = DatasetConfig.model_validate(cloud_settings["datasets"])
    _wait_for("dataset samples", lambda: pool_stats(ds).total >= len(expected_samples), 30)
    assert pool_stats(ds).total == len(expected_samples)

    # InfluxDB: exactly one point per unique message of each stream.
    results = _unique_messages(drain(bootstrap, [topics["results"]], expect=1, timeout=10))
    results = {k: v for k, v in results.items() if isinstance(v, ResultV1)}
    statuses = _unique_messages(drain(bootstrap, [topics["status"]], expect=1, timeout=10))
    bucket = cloud_settings["influx"]["bucket"]
    with _influx(influx_credentials) as client:
        expect = {
            "result": len(results),
            "verdict": len(by_frame),
            "status": len(statuses),
            "alert": len(alerts()),
        }

        def counts() -> dict[str, int]:
            return {m: count_points(client, bucket, m, "-1h") for m in expect}

        _wait_for(f"points {expect}", lambda: counts() == expect, 60, 2)
        assert count_points(client, bucket, "fleet", "-1h") >= len(devices)
        assert count_points(client, bucket, "drift", "-1h") >= 1


def _results(site: str, device: str, n: int, *, start_seq: int = 1) -> list[ResultV1]:
    ref = builtin_package("conveyor-int8").ref
    t0 = now_ns() - n * 1_000_000
    return [
        ResultV1(
            id=new_id(),
            site=site,
            device=device,
            seq=start_seq + i,
            ts=t0 + i * 1_000_000,
            model=ref,
            task="classify",
            source="cam0",
            line="line1",
            label="crack" if i % 4 == 0 else "ok",
            score=0.97,
            route="confident",
            latency_ms=1.2,
        )
        for i in range(n)
    ]


def _produce(producer: Any, topic: str, messages: list[Any]) -> None:
    for m in messages:
        producer.send(topic, key=m.device.encode(), value=encode(m))
    producer.flush()


def test_kill9_worker_midstream_then_restart_writes_every_point_once(
    unique: str,
    tmp_path: Path,
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    influx_credentials: Any,
    kafka_producer_factory: Callable[..., Any],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.split("  - id: machine_anomaly", maxsplit=1)[0])  # the line rule only
    settings = {
        **cloud_settings,
        "rules_file": str(rules),
        "agents": {"slowpath": False, "datasets": False},
    }
    producer = kafka_producer_factory()
    topics = settings["topics"]
    batch = [m for d in range(8) for m in _results(unique, f"{unique}-d{d}", 2500)]
    _produce(producer, topics["results"], batch[: len(batch) // 2])

    worker = worker_process_factory(settings)
    worker.start(timeout=120)
    _wait_for(
        "some committed points",
        lambda: worker.metric("edgeloop_worker_sink_records_total") > 0,
        60,
        0.2,
    )
    _produce(producer, topics["results"], batch[len(batch) // 2 :])
    worker.kill(signal.SIGKILL)

    restarted = worker_process_factory({**settings, "instance": f"{unique}-w1b"})
    restarted.start(timeout=120)
    bucket = settings["influx"]["bucket"]
    with _influx(influx_credentials) as client:
        _wait_for(
            f"{len(batch)} result points",
            lambda: count_points(client, bucket, "result", "-1h") == len(batch),
            120,
            2,
        )
        time.sleep(3)  # nothing more may arrive: a replay overwrites, it does not add
        assert count_points(client, bucket, "result", "-1h") == len(batch)

        # The line rule fired once; its state came back from the changelog, so the
        # replayed results did not fire it again with a new id.
        def alert_ids() -> set[str]:
            recs = drain(
                settings["kafka"]["bootstrap_servers"][0],
                [topics["alerts"]],
                expect=1,
                timeout=5,
                idle_s=1,
            )
            return {decode(r.value).id for r in recs if decode(r.value).rule == "defect_rate_high"}

        _wait_for("the defect alert", lambda: len(alert_ids()) >= 1, 30, 1)
        assert len(alert_ids()) == 1
        _wait_for("its point", lambda: count_points(client, bucket, "alert", "-1h") >= 1, 30)
        assert count_points(client, bucket, "alert", "-1h") == 1


def test_influx_down_then_back_loses_nothing_and_commits_only_after_the_write(
    devstack: Any,
    unique: str,
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    influx_credentials: Any,
    kafka_producer_factory: Callable[..., Any],
) -> None:
    from tests.integration.tcpproxy import TcpProxy

    with TcpProxy("127.0.0.1", 8086) as proxy:
        settings = {
            **cloud_settings,
            "influx": {**cloud_settings["influx"], "url": f"http://127.0.0.1:{proxy.port}"},
            "agents": {"slowpath": False, "datasets": False, "rules": False},
        }
        worker = worker_process_factory(settings)
        worker.start(timeout=120)
        proxy.cut()
        msgs = _results(unique, f"{unique}-d0", 3000)
        producer = kafka_producer_factory()
        _produce(producer, settings["topics"]["results"], msgs)
        time.sleep(6)
        assert worker.metric("edgeloop_worker_sink_records_total") == 0, "nothing committed"
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker waits for InfluxDB, it does not crash"
        proxy.resume()
        bucket = settings["influx"]["bucket"]
        with _influx(influx_credentials) as client:
            _wait_for(
                "every point after the outage",
                lambda: count_points(client, bucket, "result", "-1h") == len(msgs),
                90,
                1,
            )
        _wait_for(
            "the offsets committed",
            lambda: worker.metric("edgeloop_worker_sink_records_total") == len(msgs),
            30,
            0.5,
        )
        assert worker.metric("edgeloop_sink_retries_total") >= 1


def test_two_workers_share_the_partitions(
    unique: str,
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    influx_credentials: Any,
    kafka_producer_factory: Callable[..., Any],
) -> None:
    from tests.integration.helpers import free_port

    settings = {**cloud_settings, "agents": {"slowpath": False, "datasets": False}}
    first = worker_process_factory(settings)
    second = worker_process_factory(
        {**settings, "instance": f"{unique}-w2", "metrics": {"port": free_port()}}
    )
    first.start(timeout=120)
    second.start(timeout=120)
    msgs = [m for d in range(16) for m in _results(unique, f"{unique}-d{d}", 300)]
    _produce(kafka_producer_factory(), settings["topics"]["results"], msgs)
    bucket = settings["influx"]["bucket"]
    with _influx(influx_credentials) as client:
        _wait_for(
            "every point",
            lambda: count_points(client, bucket, "result", "-1h") == len(msgs),
            120,
            1,
        )

    def processed() -> tuple[float, float]:
        return (
            first.metric("edgeloop_worker_processed_total", agent="on_results"),
            second.metric("edgeloop_worker_processed_total", agent="on_results"),
        )

    _wait_for("the rules agents to see every result", lambda: sum(processed()) >= len(msgs), 120)
    on_first, on_second = processed()
    assert on_first > 0, "the first worker got partitions"
    assert on_second > 0, "the second worker got partitions"


def test_validate_config_accepts_the_example_and_names_bad_fields(tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "cloud",
            "validate-config",
            "--config",
            "configs/cloud.example.yaml",
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"sink": {"batch_points": -1}, "topics": {"results": "a b"}}))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "cloud",
            "validate-config",
            "--config",
            str(bad),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "sink.batch_points" in out.stderr
    assert "topics.results" in out.stderr


def test_status_offline_is_in_the_fleet(
    unique: str,
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    kafka_producer_factory: Callable[..., Any],
) -> None:
    settings = {**cloud_settings, "agents": {"slowpath": False, "datasets": False}}
    worker = worker_process_factory(settings)
    worker.start(timeout=120)
    ref = builtin_package("conveyor-int8").ref
    status = StatusV1(
        id=new_id(),
        site=unique,
        device=f"{unique}-d0",
        seq=1,
        ts=now_ns(),
        state="offline",
        software="0.1.0",
        models=[ref],
    )
    _produce(kafka_producer_factory(), settings["topics"]["status"], [status])
    out_lines: list[str] = []

    def listed() -> bool:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli.main",
                "fleet",
                "--json",
                "--bucket",
                settings["influx"]["bucket"],
            ],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out_lines[:] = proc.stdout.splitlines()
        return any(f"{unique}-d0" in line and "offline" in line for line in out_lines)

    _wait_for("the device in `edgeloop fleet`", listed, 60, 2)


def test_rule_state_survives_kill9_through_the_changelog(
    devstack: Any,
    unique: str,
    tmp_path: Path,
    cloud_settings: dict[str, Any],
    worker_process_factory: Callable[..., Any],
    kafka_producer_factory: Callable[..., Any],
) -> None:
    """19 defective parts (one short of min_samples), kill -9, restart, one more part:
    the alert fires only if the first 19 came back from the changelog."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.split("  - id: machine_anomaly", maxsplit=1)[0])
    settings = {
        **cloud_settings,
        "rules_file": str(rules),
        "agents": {"slowpath": False, "datasets": False, "sink": False},
    }
    topics = settings["topics"]
    parts = _results(unique, f"{unique}-d0", 20)
    parts = [p.model_copy(update={"label": "crack"}) for p in parts]
    producer = kafka_producer_factory()
    worker = worker_process_factory(settings)
    worker.start(timeout=120)
    _produce(producer, topics["results"], parts[:19])
    _wait_for(
        "the 19 parts in the line rule",
        lambda: worker.metric("edgeloop_worker_processed_total", agent="on_line") >= 19,
        60,
        0.5,
    )
    time.sleep(4)  # offsets and changelog committed (commit interval 1 s)
    worker.kill(signal.SIGKILL)

    def firing() -> list[Any]:
        recs = drain(devstack.kafka_bootstrap, [topics["alerts"]], expect=1, timeout=4, idle_s=1)
        return [a for a in _unique_messages(recs).values() if a.state == "firing"]

    assert firing() == [], "19 parts are below min_samples"
    restarted = worker_process_factory({**settings, "instance": f"{unique}-w1b"})
    restarted.start(timeout=120)
    _produce(producer, topics["results"], parts[19:])
    _wait_for("the alert on the 20th part", lambda: len(firing()) == 1, 60, 1)
    [alert] = firing()
    assert alert.rule == "defect_rate_high"
    assert "20 parts" in alert.summary
