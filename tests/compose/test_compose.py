"""The docker-compose stack, checked offline (no Docker engine here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config.devstack import DevstackConfig
from pipeline.devstack.mosquitto import MosquittoService

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
OFFICIAL = {
    "mosquitto": "eclipse-mosquitto",
    "kafka": "apache/kafka",
    "influxdb": "influxdb",
    "grafana": "grafana/grafana",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def test_services_use_official_images(compose):
    services = compose["services"]
    assert set(services) == set(OFFICIAL)
    for name, image in OFFICIAL.items():
        ref = services[name]["image"]
        repo, _, tag = ref.partition(":")
        assert repo == image, f"{name}: {ref}"
        assert tag, f"{name} must pin a tag"
        assert tag != "latest", f"{name} must pin a tag"


def test_ports_match_the_devstack(compose):
    defaults = DevstackConfig()
    expected = {
        "mosquitto": defaults.mosquitto.port,
        "kafka": defaults.kafka.port,
        "influxdb": defaults.influxdb.port,
        "grafana": 3000,
    }
    for name, port in expected.items():
        ports = compose["services"][name]["ports"]
        assert f"127.0.0.1:{port}:{port}" in ports, f"{name}: {ports}"


def test_kafka_version_matches_the_devstack(compose):
    tag = compose["services"]["kafka"]["image"].split(":")[1]
    assert tag == DevstackConfig().kafka.version


def test_kafka_is_kraft_single_node(compose):
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"].endswith(":9092")


def test_bind_mounts_exist(compose):
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE / src).exists(), f"{name}: {src} is missing"


def _settings(text: str) -> dict[str, str]:
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and not line.startswith("log_type"):
            key, _, value = line.partition(" ")
            out[key] = value
    return out


def test_mosquitto_conf_matches_the_devstack(tmp_path):
    svc = MosquittoService(DevstackConfig(run_dir=tmp_path))
    svc.conf_dir.mkdir(parents=True)
    if svc.binary() is None:
        pytest.skip("mosquitto not installed")
    svc.argv()
    ours = _settings((svc.conf_dir / "mosquitto.conf").read_text())
    theirs = _settings((COMPOSE / "mosquitto" / "mosquitto.conf").read_text())
    for differs in ("listener", "persistence_location", "log_timestamp_format", "user"):
        ours.pop(differs, None)
        theirs.pop(differs, None)
    assert ours == theirs


def test_grafana_provisioning_is_consistent():
    ds = yaml.safe_load((COMPOSE / "grafana/provisioning/datasources/influxdb.yaml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    assert ds["datasources"][0]["url"] == "http://influxdb:8086"
    assert ds["datasources"][0]["jsonData"]["version"] == "Flux"
    for path in (COMPOSE / "grafana/dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"]
        assert board["title"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"
            for target in panel["targets"]:
                assert re.search(r'from\(bucket: "edgeloop"\)', target["query"])


def test_compose_config_if_docker_compose_is_available():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker client has no compose plugin")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
