"""Stand-ins for Faust topics, streams and events, and builders of worker parts.

Faust tables are plain dicts here (they support ``get``, ``[]``, ``items``,
``del`` and ``len`` like a Faust table); every value put into one is checked to
survive a JSON round trip, as a changelog-backed table needs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud_stream.alerts.evaluators import build_evaluators
from cloud_stream.alerts.rules import parse_rules
from cloud_stream.slowpath.registry import ModelRegistry
from cloud_stream.worker.agents import Agents, Tables, Topics
from cloud_stream.worker.components import Components
from cloud_stream.worker.config import CloudConfig
from cloud_stream.worker.metrics import WorkerMetrics
from cloud_stream.worker.records import Record
from pipeline.schemas import AlertV1, ModelRef, decode, encode
from pipeline.schemas.base import StrictModel


@functools.cache
def registry() -> ModelRegistry:
    """One registry of the built-in packages for the whole session (they are read-only)."""
    return ModelRegistry()


def builtin_ref(name: str) -> ModelRef:
    """The identity of a built-in model package."""
    found = [r for r in registry().refs() if r.name == name]
    assert found, f"no built-in package {name}"
    return found[0]


@dataclass
class Sent:
    """One ``send`` call on a fake topic."""

    key: bytes | None
    value: Any
    headers: Any = None
    partition: int | None = None


class FakeTopic:
    """Records what is sent to it, like a Faust topic's ``send``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Sent] = []

    async def send(
        self,
        *,
        key: bytes | None = None,
        value: Any = None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        self.sent.append(Sent(key, value, headers, partition))

    def get_topic_name(self) -> str:
        return self.name

    def alerts(self) -> list[AlertV1]:
        """The values sent, decoded as alerts."""
        out = []
        for s in self.sent:
            msg = decode(s.value)
            assert isinstance(msg, AlertV1)
            assert s.key == msg.device.encode()
            out.append(msg)
        return out


class JsonTable(dict[str, Any]):
    """A dict that checks every stored value is plain JSON (a changelog could hold it)."""

    def __setitem__(self, key: str, value: Any) -> None:
        text = json.dumps(value, allow_nan=False)
        assert json.loads(text) == value, f"{key}: value does not survive a JSON round trip"
        super().__setitem__(key, value)


@dataclass
class FakeMessage:
    """The ``event.message`` Faust gives an agent."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class FakeEvent:
    """A Faust event: its message, and the deserialized value."""

    message: FakeMessage
    value: Any = None


class FakeStream:
    """A Faust stream over fixed events."""

    def __init__(self, events: Sequence[FakeEvent]) -> None:
        self._events = list(events)

    async def events(self) -> AsyncIterator[FakeEvent]:
        for e in self._events:
            yield e


class RecordingWriter:
    """An InfluxDB writer that keeps the lines written."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def write(self, lines: Sequence[str]) -> Any:
        self.calls.append(list(lines))
        return None


@dataclass
class Harness:
    """Agents over fake topics and dict tables."""

    agents: Agents
    topics: Topics
    tables: Tables
    components: Components
    offsets: dict[str, int] = field(default_factory=dict)

    def record(
        self, topic: str, message: StrictModel | bytes, *, partition: int = 0, key: bytes = b"k"
    ) -> Record:
        """A Kafka record carrying ``message`` (encoded unless bytes already)."""
        value = message if isinstance(message, bytes) else encode(message)
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return Record(topic, partition, offset, key, value, ())

    def fake(self, name: str) -> FakeTopic:
        topic = getattr(self.topics, name)
        assert isinstance(topic, FakeTopic)
        return topic


def harness(
    rules_yaml: str = "rules: []",
    *,
    config: CloudConfig | None = None,
    partitions: int = 4,
    writer: RecordingWriter | None = None,
    clock_ns: int | None = None,
) -> Harness:
    """Agents with real evaluators from ``rules_yaml``, fake topics and dict tables."""
    reg = registry()
    rules = parse_rules(rules_yaml)
    kwargs: dict[str, Any] = {}
    if clock_ns is not None:
        kwargs["clock"] = lambda: clock_ns
    c = Components(
        config=config or CloudConfig(),
        metrics=WorkerMetrics(),
        partitions=partitions,
        registry=reg,
        evaluators=build_evaluators(rules, reg.score_reference),
        writer=writer,  # type: ignore[arg-type]
        **kwargs,
    )
    topics = Topics(
        results=FakeTopic("edgeloop.results"),
        frames=FakeTopic("edgeloop.frames"),
        verdicts=FakeTopic("edgeloop.verdicts"),
        status=FakeTopic("edgeloop.status"),
        telemetry=FakeTopic("edgeloop.telemetry"),
        alerts=FakeTopic("edgeloop.alerts"),
        dlq=FakeTopic("edgeloop.dlq"),
        by_line=FakeTopic("edgeloop-cloud-results-by-line"),
        ticks=FakeTopic("edgeloop-cloud-ticks"),
    )
    tables = Tables(rules=JsonTable(), audit=JsonTable(), fleet=JsonTable())
    return Harness(Agents(c, topics, tables), topics, tables, c)


def metric(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    """The current value of one sample of the worker's metrics (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
