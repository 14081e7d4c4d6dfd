"""``edgeloop edge run`` end to end against the real Mosquitto.

The node runs as a real process with simulated camera and machine sources; a
subscriber validates every message it publishes against the schemas. Crash and
offline tests count every decision: nothing the node put in its outbox is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.schemas import FrameMetaV1, ResultV1, StatusV1, TelemetryV1
from pipeline.schemas.codec import decode
from pipeline.schemas.properties import from_properties
from tests.integration.conftest import MqttRecorder
from tests.integration.helpers import REPO, free_port

pytestmark = pytest.mark.integration


def _config(
    tmp_path: Path,
    device: str,
    *,
    mqtt_port: int,
    frames: int,
    action_topic: str,
    metrics_port: int = 0,
) -> Path:
    cfg: dict[str, Any] = {
        "site": "plant-a",
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
                "seed": 7,
                "count": frames,
            },
            {
                "type": "sim.machine",
                "name": "press1",
                "realtime": False,
                "duration_s": 30,
                "faults": [{"fault": "imbalance", "start_s": 10, "duration_s": 10}],
            },
        ],
        # Generous budget and a high audit rate so the run uploads frames of both kinds.
        "router": {
            "frames_per_min": 6000,
            "burst": 1000,
            "audit_rate": 0.2,
            "audit_frames_per_min": 6000,
            "audit_burst": 1000,
            "seed": 3,
        },
        "actions": [
            {
                "name": "reject-part",
                "when": {
                    "labels": ["crack", "scratch", "dent", "missing_feature", "contamination"]
                },
                "do": {"type": "mqtt", "topic": action_topic, "payload": "$label $score"},
                "cooldown_s": 0,
            },
        ],
        "outbox": {"path": str(tmp_path / "outbox.db"), "max_mb": 64},
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
        },
        "telemetry": {"interval_s": 1},
        "anomaly": {"every": 1},
        "metrics": {"enabled": True, "port": metrics_port},
        "logging": {"level": "INFO"},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _edge(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", "edge", "run", "--config", str(config), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _decode_all(messages: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for msg in messages:
        stream = msg.topic.split("/", 4)[4]
        if stream == "frame":
            meta = from_properties(msg.properties.UserProperty)
            assert isinstance(meta, FrameMetaV1)
            assert meta.size == len(msg.payload)
            assert msg.payload[:2] == b"\xff\xd8", "frames travel as raw JPEG"
            out.setdefault("frame", []).append(meta)
        else:
            out.setdefault(stream, []).append(decode(msg.payload))
    return out


def _routes_done(metrics_port: int, source: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read()
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("edgeloop_edge_routes_total{") and f'source="{source}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_edge_run_publishes_valid_results_frames_and_telemetry(
    tmp_path: Path, unique: str, mqtt_factory: Callable[..., MqttRecorder], devstack: Any
) -> None:
    device = f"edge-{unique}"
    action_topic = f"test/{unique}/actuators/reject"
    sub = mqtt_factory()
    sub.subscribe(f"edgeloop/v1/plant-a/{device}/#")
    sub.subscribe(action_topic)
    _, port = devstack.mqtt_address
    proc = _edge(
        _config(tmp_path, device, mqtt_port=port, frames=120, action_topic=action_topic),
        "--exit-when-done",
    )
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out

    messages = sub.wait_for(10, timeout=5)
    got = _decode_all([m for m in messages if m.topic.startswith("edgeloop/")])
    results = [r for r in got["result"] if isinstance(r, ResultV1)]
    vision = [r for r in results if r.source == "conveyor1"]
    machine = [r for r in results if r.source == "press1"]
    assert len(vision) == 120, "one result per frame"
    assert {r.route for r in vision} >= {"confident"}
    assert machine, "sensor windows produce results"
    assert any(r.label == "anomaly" for r in machine), "the injected imbalance is detected"
    assert all(r.anomaly is not None for r in machine)

    frames = {f.id: f for f in got.get("frame", [])}
    uploads = [r for r in vision if r.frame_id is not None]
    assert uploads, "uncertain or audit frames are uploaded"
    for r in uploads:
        assert r.frame_id in frames, "every referenced frame arrives"
        assert frames[r.frame_id].result_id == r.id
    assert {f.reason for f in frames.values()} <= {"uncertain", "audit"}

    telemetry = [t for t in got["telemetry"] if isinstance(t, TelemetryV1)]
    assert telemetry
    assert telemetry[-1].counters.get("mqtt.acked", 0) > 0
    statuses = [s for s in got["status"] if isinstance(s, StatusV1)]
    assert statuses[0].state in {"online", "degraded"}
    assert statuses[-1].state == "offline"

    seqs = [m.seq for m in results + telemetry] + [f.seq for f in frames.values()]
    assert len(seqs) == len(set(seqs)), "seq is unique per device"

    actions = [m for m in messages if m.topic == action_topic]
    defects = [r for r in vision if r.action == "reject-part"]
    assert len(actions) == len(defects) > 0, "each fired action reached its topic"


def test_node_offline_then_kill9_loses_nothing(
    tmp_path: Path, unique: str, mqtt_factory: Callable[..., MqttRecorder], devstack: Any
) -> None:
    """Offline: the node decides into its outbox; kill -9; a restart sends all of it."""
    device = f"edge-{unique}"
    dead_port = free_port()  # nothing listens: the broker is "down"
    metrics_port = free_port()
    frames = 60
    proc = _edge(
        _config(
            tmp_path,
            device,
            mqtt_port=dead_port,
            frames=frames,
            action_topic="x/y",
            metrics_port=metrics_port,
        )
    )
    try:
        deadline = time.monotonic() + 120
        done = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = _routes_done(metrics_port, "conveyor1")
            except OSError:
                done = 0.0
            if done >= frames:
                break
            time.sleep(0.2)  # polling another process's counter; there is no event to await
        assert done >= frames, f"node decided only {done} of {frames} frames"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    restart_at = time.time_ns()

    sub = mqtt_factory()
    sub.subscribe(f"edgeloop/v1/plant-a/{device}/result")
    _, port = devstack.mqtt_address
    cfg = _config(tmp_path, device, mqtt_port=port, frames=1, action_topic="x/y")
    proc = _edge(cfg, "--exit-when-done")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    got = _decode_all(sub.wait_for(frames + 1, timeout=10))
    before = {r.id for r in got["result"] if r.source == "conveyor1" and r.ts < restart_at}
    assert len(before) == frames, f"{frames - len(before)} results decided offline were lost"


def test_validate_config_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "edge.yaml"
    bad.write_text(
        json.dumps(
            {
                "site": "plant a",
                "device": "edge-1",
                "models": {"vision": {"package": "/nonexistent/pkg"}},
                "sources": [{"type": "sim.conveyr", "name": "c1"}],
            }
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "edge",
            "validate-config",
            "--config",
            str(bad),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "site" in proc.stderr
    assert "sources[0]" in proc.stderr
    assert "sim.conveyor" in proc.stderr, "an unknown source type lists the valid ones"


def test_validate_config_accepts_the_example() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "edge",
            "validate-config",
            "--config",
            "configs/edge.example.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_tampered_model_refuses_to_start(tmp_path: Path, unique: str, devstack: Any) -> None:
    import shutil

    from pipeline.modelpkg import BUILTIN_DIR

    pkg = tmp_path / "vision-pkg"
    shutil.copytree(BUILTIN_DIR / "conveyor-int8", pkg)
    onnx = pkg / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    _, port = devstack.mqtt_address
    cfg = _config(tmp_path, f"edge-{unique}", mqtt_port=port, frames=5, action_topic="x/y")
    text = cfg.read_text().replace("builtin:conveyor-int8", str(pkg))
    cfg.write_text(text)
    proc = _edge(cfg, "--exit-when-done")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "SHA-256" in out
    assert str(pkg) in out, "the error names the package"


def test_lost_camera_degrades_status_and_the_rest_keeps_running(
    tmp_path: Path, unique: str, mqtt_factory: Callable[..., MqttRecorder], devstack: Any
) -> None:
    device = f"edge-{unique}"
    dead = free_port()
    sub = mqtt_factory()
    sub.subscribe(f"edgeloop/v1/plant-a/{device}/#")
    _, port = devstack.mqtt_address
    cfg = _config(tmp_path, device, mqtt_port=port, frames=5, action_topic="x/y")
    raw = yaml.safe_load(cfg.read_text())
    raw["sources"][0] = {  # a camera stream that is not there
        "type": "camera",
        "name": "cam-gate",
        "uri": f"http://127.0.0.1:{dead}/stream.mjpg",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "read_timeout_s": 1,
    }
    raw["sources"][1]["realtime"] = True  # keep the node running for a while
    raw["sources"][1]["duration_s"] = 600
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = _edge(cfg)
    try:
        deadline = time.monotonic() + 60
        degraded: list[StatusV1] = []
        results: list[ResultV1] = []
        while time.monotonic() < deadline and not (degraded and results):
            got = _decode_all(sub.wait_for(len(sub.messages) + 1, timeout=1))
            degraded = [s for s in got.get("status", []) if s.state == "degraded"]
            results = [r for r in got.get("result", []) if r.source == "press1"]
        assert degraded, "a lost camera turns the retained status to degraded"
        assert degraded[-1].sources["cam-gate"] == "lost"
        assert degraded[-1].sources["press1"] == "ok"
        assert results, "the other sources keep deciding"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_a_taken_metrics_port_fails_the_start_cleanly(
    tmp_path: Path, unique: str, devstack: Any
) -> None:
    import socket

    _, port = devstack.mqtt_address
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        cfg = _config(
            tmp_path,
            f"edge-{unique}",
            mqtt_port=port,
            frames=5,
            action_topic="x/y",
            metrics_port=taken,
        )
        proc = _edge(cfg)
        out, _ = proc.communicate(timeout=60)  # exits by itself: no thread was left running
    assert proc.returncode == 1
    assert "metrics.port" in out
    assert "pick a free port" in out
