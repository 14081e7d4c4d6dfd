from __future__ import annotations

from pathlib import Path

import pytest

from cloud_stream.alerts.rules import (
    RULE_KINDS,
    DefectRateRule,
    RulesConfig,
    TelemetryGaugeRule,
    load_rules,
    parse_rules,
)
from pipeline.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "alerts.example.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, source="rules.yaml", env={})
    return [p.render(info.value.file) for p in info.value.problems]


def test_example_has_one_valid_rule_of_each_kind() -> None:
    rules = load_rules(EXAMPLE)
    assert sorted(r.kind for r in rules.rules) == sorted(RULE_KINDS)
    defect = next(r for r in rules.rules if isinstance(r, DefectRateRule))
    assert defect.ok_labels == ["ok"]
    assert 0 < defect.threshold < 1


def test_defaults() -> None:
    rules = parse_rules("rules:\n  - {id: d, kind: defect_rate, threshold: 0.1}\n")
    rule = rules.rules[0]
    assert isinstance(rule, DefectRateRule)
    assert (rule.scope, rule.ok_labels, rule.severity, rule.enabled) == (
        "line",
        ["ok"],
        "warning",
        True,
    )
    assert parse_rules("") == RulesConfig()


def test_field_errors_name_the_line_of_the_field() -> None:
    text = """\
rules:
  - id: ok-rule
    kind: device_offline
  - id: bad
    kind: defect_rate
    window_s: 300
    threshold: 5
"""
    assert problems(text) == [
        "rules.yaml:7: rules[1].threshold: Input should be less than or equal to 1"
    ]


def test_unknown_kind_and_unknown_setting_are_reported_with_lines() -> None:
    text = """\
rules:
  - id: a
    kind: defect_ratio
  - id: b
    kind: telemetry_gauge
    gauge: outbox.depth
    above: 10
    colour: red
"""
    found = problems(text)
    assert len(found) == 2
    assert found[0].startswith("rules.yaml:2: rules[0]: ")
    assert "defect_ratio" in found[0]
    assert found[1].startswith("rules.yaml:8: rules[1].colour: unknown setting")


def test_duplicate_rule_ids_are_an_error() -> None:
    text = """\
rules:
  - {id: same, kind: device_offline}
  - {id: other, kind: device_offline}
  - {id: same, kind: anomaly_sustained}
"""
    assert problems(text) == [
        "rules.yaml:4: rules[2].id: Value error, rule id 'same' is used by rules[0] and rules[2]; "
        "ids must be unique"
    ]


def test_window_must_be_a_multiple_of_the_step() -> None:
    text = "rules:\n  - {id: d, kind: defect_rate, threshold: 0.1, window_s: 300, step_s: 70}\n"
    [found] = problems(text)
    assert found.startswith("rules.yaml:2: rules[0]: ")
    assert "multiple of step_s" in found


def test_gauge_needs_a_limit_in_order() -> None:
    assert (
        "set 'above', 'below'"
        in problems("rules:\n  - {id: g, kind: telemetry_gauge, gauge: outbox.depth}\n")[0]
    )
    assert (
        "'below' must be less"
        in problems("rules:\n  - {id: g, kind: telemetry_gauge, gauge: a.b, above: 1, below: 2}\n")[
            0
        ]
    )
    rule = parse_rules("rules:\n  - {id: g, kind: telemetry_gauge, gauge: a.b, below: 2}\n")
    assert isinstance(rule.rules[0], TelemetryGaugeRule)


def test_bad_ids_and_yaml_errors() -> None:
    assert "rules[0].id" in problems("rules:\n  - {id: 'a b', kind: device_offline}\n")[0]
    [found] = problems("rules:\n  - id: a\n   kind: x\n")
    assert found.startswith("rules.yaml:3: <root>: not valid YAML")


def test_environment_values_are_substituted() -> None:
    text = "rules:\n  - {id: d, kind: defect_rate, threshold: '${LIMIT}'}\n"
    rule = parse_rules(text, env={"LIMIT": "0.2"}).rules[0]
    assert isinstance(rule, DefectRateRule)
    assert rule.threshold == 0.2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rules(tmp_path / "nope.yaml")


def test_load_rules_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - id: x\n    kind: drift_psi\n    threshold: -1\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert f"{path}:4: rules[0].threshold" in str(info.value)
