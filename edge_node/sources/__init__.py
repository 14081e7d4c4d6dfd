"""Sources of frames and sensor blocks, and the registry that finds them by ``type``.

Each built-in plugin module registers itself when imported; :func:`load_all`
imports them all. Heavy libraries (OpenCV, paho) are imported only when a
source is opened, so loading the registry to validate a config stays cheap.
"""

from __future__ import annotations

__all__ = [
    "BUILTIN_MODULES",
    "REGISTRY",
    "Frame",
    "SensorBlock",
    "Source",
    "SourceConfig",
    "SourceError",
    "SourceItem",
    "SourceState",
    "create_source",
    "load_all",
    "parse_source_config",
    "source_config_union",
]

import functools
import importlib
import operator
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from edge_node.sources.base import (
    REGISTRY,
    Frame,
    SensorBlock,
    Source,
    SourceConfig,
    SourceError,
    SourceItem,
    SourceState,
)

#: The plugin modules shipped with edgeloop, imported by :func:`load_all`.
BUILTIN_MODULES = ("camera", "folder", "conveyor", "machine", "csv_replay", "mqtt_in")


@functools.cache
def load_all() -> dict[str, tuple[type[SourceConfig], type[Source]]]:
    """Import every built-in plugin module so that each registers itself.

    Returns:
        The registry: type key -> (config class, source class).
    """
    for name in BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY


def _valid_types() -> str:
    return ", ".join(sorted(REGISTRY))


def source_config_union() -> Any:
    """The config type of one source: a union of every plugin config, discriminated on ``type``.

    Use it as a field type in the edge config, e.g. ``sources: list[source_config_union()]``
    (build the model at runtime, or annotate with :class:`SourceConfig` and validate
    each entry with :func:`parse_source_config`).
    """
    load_all()
    classes = [REGISTRY[key][0] for key in sorted(REGISTRY)]
    if len(classes) == 1:
        return classes[0]
    return Annotated[functools.reduce(operator.or_, classes), Field(discriminator="type")]


@functools.cache
def _adapter() -> TypeAdapter[SourceConfig]:
    return TypeAdapter(source_config_union())


def parse_source_config(data: Mapping[str, Any]) -> SourceConfig:
    """Validate one source's settings into its plugin's config class.

    Raises:
        SourceError: ``type`` is missing or unknown (the message lists the valid types).
        pydantic.ValidationError: The plugin's fields are invalid.
    """
    load_all()
    kind = data.get("type")
    if kind not in REGISTRY:
        what = "source has no 'type'" if kind is None else f"unknown source type {kind!r}"
        raise SourceError(
            what, where=f"source {data.get('name', '?')}", hint=f"valid types: {_valid_types()}"
        )
    return _adapter().validate_python(dict(data))


def create_source(config: SourceConfig | Mapping[str, Any]) -> Source:
    """Build (not open) the source for a validated config, or for a raw settings mapping.

    Raises:
        SourceError: The config's ``type`` names no registered plugin.
    """
    if not isinstance(config, SourceConfig):
        config = parse_source_config(config)
    load_all()
    entry = REGISTRY.get(config.type)
    if entry is None:
        raise SourceError(
            f"unknown source type {config.type!r}",
            where=f"source {config.name}",
            hint=f"valid types: {_valid_types()}",
        )
    config_cls, source_cls = entry
    if not isinstance(config, config_cls):
        raise SourceError(
            f"config class {type(config).__name__} does not belong to type {config.type!r}",
            where=f"source {config.name}",
            hint=f"build it as {config_cls.__name__}",
        )
    return source_cls(config)
