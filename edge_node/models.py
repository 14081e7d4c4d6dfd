"""Loading the node's model packages at start-up, and matching sources to models."""

from __future__ import annotations

__all__ = ["LoadedModel", "LoadedModels", "load_models", "resolve_package"]

from dataclasses import dataclass, field
from pathlib import Path

from edge_node.config import EdgeConfig
from edge_node.sources import REGISTRY
from edge_node.sources.base import SourceConfig
from pipeline.errors import ConfigError, ConfigProblem
from pipeline.modelpkg import ModelPackage, builtin_package, load_package
from pipeline.schemas import ModelRef

BUILTIN = "builtin:"


def resolve_package(spec: str) -> ModelPackage:
    """Load ``builtin:NAME`` or a package folder path (checked: manifest, size, SHA-256)."""
    if spec.startswith(BUILTIN):
        return builtin_package(spec[len(BUILTIN) :])
    return load_package(Path(spec).expanduser())


@dataclass(frozen=True)
class LoadedModel:
    """A checked package and the settings it runs with."""

    key: str
    package: ModelPackage
    threads: int
    warmup: int

    @property
    def ref(self) -> ModelRef:
        """Identity carried by results."""
        return self.package.ref

    @property
    def kind(self) -> str:
        """``image`` or ``sensor``: the input the model takes."""
        return self.package.manifest.input.kind


@dataclass
class LoadedModels:
    """Every model of the node, by key, and which one each source feeds."""

    by_key: dict[str, LoadedModel]
    for_source: dict[str, LoadedModel] = field(default_factory=dict)

    def all(self) -> list[LoadedModel]:
        """The models in config order."""
        return list(self.by_key.values())


def _source_kind(cfg: SourceConfig) -> str:
    return REGISTRY[cfg.type][1].kind


def load_models(config: EdgeConfig) -> LoadedModels:
    """Load every package and give each source its model.

    Raises:
        ModelPackageError: a package is missing, invalid or tampered with.
        ConfigError: a source names a model of the wrong kind, or none fits.
    """
    models = LoadedModels(
        {
            key: LoadedModel(key, resolve_package(m.package), m.threads, m.warmup)
            for key, m in config.models.items()
        }
    )
    problems: list[ConfigProblem] = []
    for i, src in enumerate(config.sources):
        kind = _source_kind(src)
        chosen: LoadedModel | None
        if src.model is not None:
            chosen = models.by_key[src.model]
            if chosen.kind != kind:
                problems.append(
                    ConfigProblem(
                        f"sources[{i}].model",
                        f"source {src.name!r} gives {kind} data but model {src.model!r} takes "
                        f"{chosen.kind} input; name a {kind} model",
                    )
                )
                continue
        else:
            chosen = next((m for m in models.all() if m.kind == kind), None)
        if chosen is None:
            problems.append(
                ConfigProblem(
                    f"sources[{i}]",
                    f"source {src.name!r} gives {kind} data and no model under 'models:' "
                    f"takes it; add one (e.g. package: builtin:"
                    f"{'conveyor-int8' if kind == 'image' else 'machine-anomaly-int8'})",
                )
            )
            continue
        models.for_source[src.name] = chosen
    if problems:
        raise ConfigError("<edge config>", problems)
    return models
