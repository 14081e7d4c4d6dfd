"""SinkConfig: defaults, bounds, every field described."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_stream.sink.config import SinkConfig


def test_defaults():
    config = SinkConfig()
    assert config.batch_points == 5000
    assert config.flush_s == 1.0
    assert config.alert_flush_s == 0.1
    assert (config.retry_initial_s, config.retry_max_s) == (0.5, 30)
    assert config.gzip is True
    assert config.bucket is None


def test_every_field_is_described():
    for name, info in SinkConfig.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize(
    "settings",
    [
        {"batch_points": 0},
        {"flush_s": 0},
        {"alert_flush_s": -1},
        {"retry_initial_s": 5, "retry_max_s": 1},
        {"bucket": ""},
        {"batchpoints": 10},
    ],
)
def test_invalid_settings_are_refused(settings):
    with pytest.raises(ValidationError):
        SinkConfig.model_validate(settings)


def test_frozen():
    with pytest.raises(ValidationError):
        SinkConfig().gzip = False  # type: ignore[misc]
