"""Worker settings, and what build_components checks without any service."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud_stream.alerts.rules import load_rules
from cloud_stream.worker.config import AgentsConfig, CloudConfig, CloudTopics
from cloud_stream.worker.service import build_components
from pipeline.config.loader import load_config, parse_config
from pipeline.errors import ConfigError
from pipeline.topics import KafkaTopics

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "configs" / "cloud.example.yaml"
OFF = AgentsConfig(slowpath=False, rules=False, sink=False, datasets=False)

RULE = """
rules:
  - id: offline
    kind: device_offline
    after_s: 60
  - id: idle_rule
    kind: device_offline
    enabled: false
"""


def test_defaults_are_valid_and_name_the_bridge_topics() -> None:
    c = CloudConfig()
    assert c.topics.results == KafkaTopics.RESULTS
    assert c.topics.frames == KafkaTopics.FRAMES
    assert c.topics.dlq == KafkaTopics.DLQ
    assert c.rules_file is None
    assert c.slowpath.teachers["conveyor-int8"] == "conveyor-teacher"
    assert CloudConfig.model_validate(c.model_dump()) == c


@pytest.mark.parametrize("name", ["bad topic", "a/b", "", "x" * 250, "..", "tópico"])
def test_bad_topic_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        CloudTopics(results=name)
    assert "not valid" in str(info.value)


def test_a_bad_topic_in_yaml_is_reported_with_its_path_and_line() -> None:
    text = "app_id: cloud-a\ntopics:\n  results: edgeloop.results\n  alerts: 'my alerts'\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, CloudConfig, source="w.yaml", env={})
    [problem] = info.value.problems
    assert problem.path == "topics.alerts"
    assert problem.line == 4
    assert "my alerts" in problem.message


@pytest.mark.parametrize("field", ["app_id", "instance"])
def test_ids_must_be_safe(field: str) -> None:
    with pytest.raises(ValidationError):
        CloudConfig(**{field: "worker/1"})


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("agents:\n  slowpth: false\n", CloudConfig, env={})
    assert info.value.problems[0].path == "agents.slowpth"


def test_the_example_config_loads() -> None:
    c = load_config(EXAMPLE, CloudConfig, env={})
    assert c.app_id == "edgeloop-cloud"
    assert c.rules_file == "alerts.example.yaml"
    assert c.agents.slowpath
    assert c.agents.sink
    assert (EXAMPLE.parent / c.rules_file).is_file()


def test_the_example_rules_file_resolves_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the folder of the config
    c = load_config(EXAMPLE, CloudConfig, env={}).model_copy(update={"agents": OFF})
    comps = build_components(c, base=EXAMPLE.parent, partitions=1)
    rules = load_rules(EXAMPLE.parent / "alerts.example.yaml")
    enabled = [r.id for r in rules.rules if r.enabled]
    assert [ev.rule.id for ev in comps.evaluators] == enabled
    assert enabled
    assert comps.partitions == 1
    assert comps.slowpath is None
    assert comps.writer is None
    assert comps.samples is None


def test_a_relative_rules_file_is_relative_to_the_config_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "rules.yaml").write_text(RULE)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    c = CloudConfig(rules_file="rules.yaml", agents=OFF)
    comps = build_components(c, base=conf, partitions=2)
    assert [ev.rule.id for ev in comps.evaluators] == ["offline"]  # the disabled one is left out
    with pytest.raises(ConfigError) as info:
        build_components(c, base=other, partitions=2)
    assert str(other / "rules.yaml") in str(info.value)
    assert "file not found" in str(info.value)


def test_an_absolute_rules_file_ignores_the_base(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE)
    c = CloudConfig(rules_file=str(path), agents=OFF)
    assert len(build_components(c, base=REPO, partitions=1).evaluators) == 1


def test_no_rules_file_no_rules() -> None:
    assert build_components(CloudConfig(agents=OFF), base=REPO, partitions=1).evaluators == []


def test_a_bad_rule_fails_with_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - id: r1\n    kind: device_offline\n    after_s: -5\n"
    )
    c = CloudConfig(rules_file="rules.yaml", agents=OFF)
    with pytest.raises(ConfigError) as info:
        build_components(c, base=tmp_path, partitions=1)
    [problem] = info.value.problems
    assert problem.path == "rules[0].after_s"
    assert problem.line == 4
