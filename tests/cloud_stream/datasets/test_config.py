"""Dataset settings: defaults, checks, and the datasets: section of a worker YAML."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_stream.datasets import CollectConfig, DatasetConfig, SplitConfig
from cloud_stream.datasets.cli import load_dataset_config
from pipeline.errors import ConfigError


def test_defaults():
    config = DatasetConfig()
    assert config.url == "data/datasets/conveyor"
    assert (config.split.train, config.split.val, config.split.test) == (0.8, 0.1, 0.1)
    assert config.collect.uncertain
    assert config.collect.disagreements
    assert not config.collect.audit_agreements
    assert config.min_teacher_score == 0.6
    assert config.dedup_hamming == 6


def test_every_field_is_described():
    for model in (DatasetConfig, SplitConfig, CollectConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


@pytest.mark.parametrize(
    "bad",
    [
        {"split": {"train": 0.8, "val": 0.2, "test": 0.2}},
        {"name": "a/b"},
        {"dedup_hamming": -1},
        {"min_teacher_score": 1.5},
        {"labels": ["ok", "ok"]},
        {"unknown": 1},
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        DatasetConfig.model_validate(bad)


def test_worker_yaml_section_is_read_and_the_rest_ignored(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "kafka:\n  bootstrap_servers: [x:1]\n"
        "datasets:\n  root: /srv/data\n  name: line7\n  dedup_hamming: 4\n"
    )
    config = load_dataset_config(path)
    assert (config.root, config.name, config.dedup_hamming) == ("/srv/data", "line7", 4)
    assert load_dataset_config(path, name="other").name == "other"


def test_worker_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text("faust: {}\ndatasets:\n  root: x\n  dedup_hamming: many\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_dataset_config(path)
    text = str(info.value)
    assert f"{path}:4: datasets.dedup_hamming" in text
    assert f"{path}:5: datasets.colour: unknown setting" in text
