"""Config loading: every problem reported with file, line, path and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DevstackConfig, MqttConfig, Section, load_config, parse_config
from pipeline.config.base import KafkaConfig
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


class Demo(Section):
    name: str
    mqtt: MqttConfig = MqttConfig()
    kafka: KafkaConfig = KafkaConfig()


def test_every_problem_has_line_and_path():
    text = "name: x\nmqtt:\n  port: 99999\n  colour: red\nkafka:\n  bootstrap_servers: [nope]\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, Demo, source="edge.yaml", env={})
    err = info.value
    rendered = str(err)
    assert len(err.problems) == 3
    assert "edge.yaml:3: mqtt.port:" in rendered
    assert "edge.yaml:4: mqtt.colour: unknown setting; allowed here:" in rendered
    assert "keepalive_s" in rendered  # lists the allowed keys
    assert "edge.yaml:6: kafka.bootstrap_servers:" in rendered
    assert "host:port" in rendered
    assert "--validate-config" in rendered


def test_missing_required_setting():
    with pytest.raises(ConfigError) as info:
        parse_config("mqtt: {}\n", Demo, env={})
    assert "name: required setting is missing" in str(info.value)


def test_env_substitution_for_secrets():
    text = "name: x\nmqtt:\n  password: ${MQTT_PW}\n  host: ${MQTT_HOST:-broker.local}\n"
    cfg = parse_config(text, Demo, env={"MQTT_PW": "s3cret"})
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.mqtt.host == "broker.local"


def test_unset_env_variable_is_reported_with_its_line():
    with pytest.raises(ConfigError) as info:
        parse_config("name: x\nmqtt:\n  password: ${NOPE}\n", Demo, env={})
    assert ":3: mqtt.password: environment variable NOPE is not set" in str(info.value)


def test_env_overrides():
    cfg = parse_config(
        "name: x\n", Demo, env={"APP__MQTT__PORT": "1884", "APP__NAME": "y"}, env_prefix="APP__"
    )
    assert cfg.mqtt.port == 1884
    assert cfg.name == "y"


def test_yaml_syntax_error_has_line():
    with pytest.raises(ConfigError) as info:
        parse_config("name: x\nmqtt: [\n", Demo, source="f.yaml", env={})
    assert "not valid YAML" in str(info.value)
    assert "f.yaml:" in str(info.value)


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- a\n- b\n", Demo, env={})


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", Demo)
    assert "nope.yaml" in str(info.value)
    assert "file not found" in str(info.value)


def test_configs_are_frozen():
    cfg = parse_config("name: x\n", Demo, env={})
    with pytest.raises(ValueError):
        cfg.name = "y"  # type: ignore[misc]


def test_devstack_example_config_is_valid():
    cfg = load_config(REPO / "configs" / "devstack.example.yaml", DevstackConfig, env={})
    assert cfg.kafka.version.startswith("4.")
    assert cfg.mosquitto.port == 1883
