"""The edge config: every problem reported with its path; models matched to sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node.config import EdgeConfig
from edge_node.models import load_models
from pipeline.config.loader import load_config, parse_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """
site: plant-a
device: edge-1
models:
  vision: {package: "builtin:conveyor-int8"}
  machine: {package: "builtin:machine-anomaly-int8"}
sources:
  - {type: sim.conveyor, name: c1, model: vision}
  - {type: sim.machine, name: m1}
"""


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "configs/edge.example.yaml", EdgeConfig)
    assert {s.type for s in cfg.sources} == {"sim.conveyor", "sim.machine"}
    assert cfg.actions


def test_sources_get_their_models() -> None:
    cfg = parse_config(GOOD, EdgeConfig)
    models = load_models(cfg)
    assert models.for_source["c1"].key == "vision"
    assert models.for_source["m1"].key == "machine", "default: the first model of the kind"


def test_every_problem_with_its_path() -> None:
    text = """
site: "plant a"
device: edge-1
models:
  vision: {package: "builtin:conveyor-int8", threads: 0}
sources:
  - {type: sim.conveyr, name: c1}
  - {type: sim.machine, name: m1, rate_hz: -5}
mqtt: {port: 70000}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, EdgeConfig, source="edge.yaml")
    paths = {p.path for p in err.value.problems}
    assert "site" in paths
    assert "models.vision.threads" in paths
    assert "sources[0]" in paths
    assert "sources[1].rate_hz" in paths
    assert "mqtt.port" in paths
    assert all(p.line is not None for p in err.value.problems), "each problem has its line"


def test_duplicate_source_names_and_unknown_model() -> None:
    text = GOOD.replace("name: m1", "name: c1")
    with pytest.raises(ConfigError, match="unique"):
        parse_config(text, EdgeConfig)
    with pytest.raises(ConfigError, match="not under 'models:'"):
        parse_config(GOOD.replace("model: vision", "model: nope"), EdgeConfig)


def test_source_fed_the_wrong_kind_of_model() -> None:
    cfg = parse_config(GOOD.replace("model: vision", "model: machine"), EdgeConfig)
    with pytest.raises(ConfigError, match="takes sensor input"):
        load_models(cfg)


def test_source_without_a_model_of_its_kind() -> None:
    text = GOOD.replace('  vision: {package: "builtin:conveyor-int8"}\n', "").replace(
        ", model: vision", ""
    )
    cfg = parse_config(text, EdgeConfig)
    with pytest.raises(ConfigError, match="no model under 'models:' takes it"):
        load_models(cfg)
