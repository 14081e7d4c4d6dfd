"""The source registry: every built-in plugin registers, the union discriminates on type."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from edge_node.sources import (
    BUILTIN_MODULES,
    REGISTRY,
    Source,
    SourceConfig,
    SourceError,
    create_source,
    load_all,
    parse_source_config,
    source_config_union,
)
from edge_node.sources.camera import CameraConfig, CameraSource
from edge_node.sources.folder import FolderConfig, FolderSource
from edge_node.sources.mqtt_in import MqttSource, MqttSourceConfig

BUILTIN_TYPES = {"camera", "folder", "mqtt", "sim.conveyor", "sim.machine", "csv"}


def test_load_all_registers_every_builtin_plugin():
    registry = load_all()
    assert registry is REGISTRY
    assert set(BUILTIN_TYPES) <= set(registry), sorted(registry)
    assert len(BUILTIN_MODULES) == 6
    for key, (config_cls, source_cls) in registry.items():
        assert issubclass(config_cls, SourceConfig)
        assert issubclass(source_cls, Source)
        assert config_cls.model_fields["type"].default == key
        assert source_cls.key == key
        assert source_cls.kind in ("image", "sensor")


def test_every_plugin_config_field_is_described():
    undocumented = {
        key: names
        for key, (config_cls, _) in load_all().items()
        if (names := [n for n, f in config_cls.model_fields.items() if not f.description])
    }
    assert not undocumented, "give these fields Field(description=...)"


@pytest.mark.parametrize(
    ("data", "config_cls"),
    [
        ({"type": "camera", "name": "cam0", "uri": 0}, CameraConfig),
        ({"type": "camera", "name": "cam1", "uri": "rtsp://10.0.0.5/s"}, CameraConfig),
        ({"type": "folder", "name": "f0", "path": "/data"}, FolderConfig),
        (
            {"type": "mqtt", "name": "m0", "topic": "a/+/s", "channels": ["t"], "rate_hz": 1},
            MqttSourceConfig,
        ),
    ],
)
def test_union_picks_the_config_class_by_type(data, config_cls):
    class EdgeSources(BaseModel):
        sources: list[source_config_union()]  # type: ignore[valid-type]

    parsed = EdgeSources.model_validate({"sources": [data]}).sources[0]
    assert type(parsed) is config_cls
    assert type(parse_source_config(data)) is config_cls


def test_union_reports_an_unknown_type_with_the_valid_ones():
    class EdgeSources(BaseModel):
        sources: list[source_config_union()]  # type: ignore[valid-type]

    with pytest.raises(ValidationError) as info:
        EdgeSources.model_validate({"sources": [{"type": "kamera", "name": "c", "uri": 0}]})
    text = str(info.value)
    assert "kamera" in text
    for key in BUILTIN_TYPES:
        assert repr(key) in text


def test_union_errors_name_the_plugins_fields():
    with pytest.raises(ValidationError, match=r"camera\.uri"):
        parse_source_config({"type": "camera", "name": "c"})


@pytest.mark.parametrize("data", [{"type": "kamera", "name": "c"}, {"name": "c"}])
def test_parse_source_config_lists_valid_types(data):
    with pytest.raises(SourceError) as info:
        parse_source_config(data)
    assert info.value.hint is not None
    for key in BUILTIN_TYPES:
        assert key in info.value.hint


@pytest.mark.parametrize(
    ("data", "source_cls"),
    [
        ({"type": "camera", "name": "cam0", "uri": 0}, CameraSource),
        ({"type": "folder", "name": "f0", "path": "/data"}, FolderSource),
        (
            {"type": "mqtt", "name": "m0", "topic": "a/b", "channels": ["t"], "rate_hz": 1},
            MqttSource,
        ),
    ],
)
def test_create_source_builds_without_opening(data, source_cls):
    src = create_source(data)
    assert type(src) is source_cls
    assert src.name == data["name"]
    assert create_source(src.config).config == src.config
    src.close()  # never opened: a no-op


def test_create_source_refuses_a_config_of_an_unregistered_type():
    class Rogue(SourceConfig):
        type: str = "rogue"

    with pytest.raises(SourceError, match="unknown source type 'rogue'") as info:
        create_source(Rogue(name="r"))
    assert info.value.hint is not None
    assert "camera" in info.value.hint
