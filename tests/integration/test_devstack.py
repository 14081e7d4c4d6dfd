"""The devstack itself: status JSON, stopping only what it started, clear errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from pipeline.config.devstack import DevstackConfig, MosquittoServiceConfig
from pipeline.devstack import Devstack
from pipeline.errors import DevstackError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_json_reports_every_service_healthy(devstack):
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", "devstack", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["healthy"] is True
    by_name = {s["name"]: s for s in report["services"]}
    assert set(by_name) == {"mosquitto", "kafka", "influxdb"}
    assert by_name["mosquitto"]["address"].startswith("mqtt://127.0.0.1:")
    assert by_name["kafka"]["version"] == devstack.config.kafka.version
    assert by_name["influxdb"]["version"].startswith("v2.")


def _private_stack(tmp_path, port: int) -> Devstack:
    config = DevstackConfig(
        run_dir=tmp_path / "run",
        mosquitto=MosquittoServiceConfig(port=port),
    )
    return Devstack(config)


def test_down_stops_only_what_it_started(tmp_path):
    stack = _private_stack(tmp_path, _free_port())
    other = _private_stack(tmp_path / "other", _free_port())
    assert stack.up(["mosquitto"]) == ["mosquitto"]
    assert other.up(["mosquitto"]) == ["mosquitto"]
    try:
        pid = stack.mosquitto.process.pid()
        assert pid is not None
        # A second `up` finds it running and starts nothing.
        assert stack.up(["mosquitto"]) == []
        assert stack.down(["mosquitto"]) == ["mosquitto"]
        assert stack.mosquitto.process.pid() is None
        assert stack.mosquitto.probe() is not None
        # The other stack's broker was not touched.
        assert other.mosquitto.probe() is None
        # Nothing of ours runs now: `down` stops nothing.
        assert stack.down(["mosquitto"]) == []
    finally:
        other.down(["mosquitto"])
        stack.down(["mosquitto"])


def test_port_taken_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        stack = _private_stack(tmp_path, port)
        with pytest.raises(DevstackError) as info:
            stack.up(["mosquitto"])
    text = str(info.value)
    assert f"port {port}" in text
    assert "taken" in text
    assert "devstack.mosquitto.port" in text


def test_broken_service_config_reports_log_tail(tmp_path):
    stack = _private_stack(tmp_path, _free_port())
    stack.mosquitto.argv = lambda: [  # type: ignore[method-assign]
        stack.mosquitto.binary() or "mosquitto",
        "-c",
        str(tmp_path / "missing.conf"),
    ]
    with pytest.raises(DevstackError) as info:
        stack.up(["mosquitto"])
    assert "did not become healthy" in str(info.value)
    assert "missing.conf" in str(info.value)
