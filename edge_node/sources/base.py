"""What every source shares: the items it yields, its config base and the plugin registry.

A source is a camera, an image folder, a simulator, a CSV replay or an MQTT
input. Each plugin module declares a config class with a ``type: Literal[...]``
key and a :class:`Source` subclass, and registers both with :func:`register`.
The edge config is a union discriminated on ``type``.
"""

from __future__ import annotations

__all__ = [
    "REGISTRY",
    "Frame",
    "SensorBlock",
    "Source",
    "SourceConfig",
    "SourceError",
    "SourceItem",
    "SourceState",
    "register",
]

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from pipeline.config.base import Section
from pipeline.errors import EdgeloopError

SourceState = Literal["ok", "lost", "error"]


class SourceError(EdgeloopError):
    """A source cannot be opened or has failed for good (not a transient glitch)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image.

    Attributes:
        source: Source name from the config.
        index: Position in this source's stream, from 0.
        ts_ns: Capture time, UTC ns (goes into the result's ``ts``).
        mono_ns: ``time.perf_counter_ns()`` when the frame was in hand; latency starts here.
        image: HxWx3 uint8 BGR (as OpenCV delivers).
        truth: Ground-truth label, when known (simulators, labelled folders).
        condition: Simulator drift condition in effect, e.g. ``dim_light``; None in-distribution.
    """

    source: str
    index: int
    ts_ns: int
    mono_ns: int
    image: np.ndarray
    truth: str | None = None
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class SensorBlock:
    """Consecutive samples of several sensor channels at one rate.

    Attributes:
        source: Source name from the config.
        index: Position in this source's stream of blocks, from 0.
        ts_ns: Time of the first sample, UTC ns.
        mono_ns: ``time.perf_counter_ns()`` when the block was in hand.
        rate_hz: Sample rate.
        channels: Channel names, in column order of ``values``.
        values: float64 array, shape (samples, channels); may hold NaN/inf from a bad sensor.
        truth: Injected fault name (``normal`` when none), when known.
    """

    source: str
    index: int
    ts_ns: int
    mono_ns: int
    rate_hz: float
    channels: tuple[str, ...]
    values: np.ndarray
    truth: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


SourceItem = Frame | SensorBlock


class SourceConfig(Section):
    """Fields every source config has; plugins add theirs and a ``type`` literal."""

    type: str = Field(description="Source plugin key, e.g. camera, folder, sim.conveyor")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Source name in results"
    )
    line: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Production line this source watches",
    )
    model: str | None = Field(
        default=None,
        description="Model key (from 'models:') this source feeds; default: the first of its kind",
    )


class Source(abc.ABC):
    """A stream of frames or sensor blocks.

    Lifecycle: ``open()`` once (raises :class:`SourceError` if it can never work),
    then ``read()`` until :attr:`exhausted` is true, then ``close()``. ``read()``
    returns ``None`` when nothing arrived within ``timeout`` or at end of stream.
    ``read()`` blocks for at most about ``timeout`` seconds; transient trouble (a
    camera that dropped) is handled inside with reconnect and backoff and is
    visible in :attr:`state` and :attr:`errors`, not raised.
    """

    key: ClassVar[str]
    kind: ClassVar[Literal["image", "sensor"]]

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.state: SourceState = "ok"
        self.errors: dict[str, int] = {}

    def count_error(self, kind: str) -> None:
        """Count one error of ``kind`` (e.g. ``unreadable``, ``nan``, ``reconnect``)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def open(self) -> None:
        """Acquire resources; raise :class:`SourceError` if the source can never work."""

    @abc.abstractmethod
    def read(self, timeout: float = 1.0) -> SourceItem | None:
        """The next item, or ``None`` (nothing yet, or end of stream: see ``exhausted``)."""

    def close(self) -> None:
        """Release resources; safe to call twice."""

    @property
    def exhausted(self) -> bool:
        """True once ``read()`` returned ``None`` for good (finite sources)."""
        return False


#: type key -> (config class, source class)
REGISTRY: dict[str, tuple[type[SourceConfig], type[Source]]] = {}


def register(
    config_cls: type[SourceConfig],
) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: register a source class under its config's ``type`` literal."""

    def deco(cls: type[Source]) -> type[Source]:
        key = config_cls.model_fields["type"].default
        cls.key = key
        REGISTRY[key] = (config_cls, cls)
        return cls

    return deco
