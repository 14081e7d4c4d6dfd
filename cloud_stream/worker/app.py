"""The Faust app of a cloud worker: settings, topics, changelog-backed tables, agents.

Data flow (every input topic is keyed by device, so one device's messages are in
one partition, and every table is co-partitioned with them)::

    edgeloop.frames ----> slowpath (teacher, micro-batched) --> edgeloop.verdicts
                                     \\--> dataset pool (uncertain + disagreed)
    edgeloop.results ---> on_results: fleet, score shift, device rules --> edgeloop.alerts
                  \\----> {app}-results-by-line (key site/line) --> on_line: line rules
    edgeloop.verdicts --> on_verdicts: agreement audit, drift rules
    edgeloop.status ----> on_status: fleet, offline rule
    edgeloop.telemetry -> on_telemetry: fleet, gauge rules
    {app}-ticks --------> on_tick (one per partition, every tick_s): offline rule,
                          idle state clean-up, drift and fleet points to InfluxDB

The InfluxDB sink is not an agent: see :mod:`cloud_stream.worker.sink_service`.
What each agent does is in :mod:`cloud_stream.worker.agents`.
"""

from __future__ import annotations

__all__ = ["DeadFn", "build_app"]

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust

from cloud_stream.kafka_conn import ssl_context
from cloud_stream.worker.agents import Agents, Tables, Topics
from cloud_stream.worker.components import Components
from cloud_stream.worker.config import CloudConfig
from cloud_stream.worker.records import Record

DeadFn = Callable[[Record, str, str, str], Awaitable[None]]


def _credentials(cfg: CloudConfig) -> Any:
    k = cfg.kafka
    if k.sasl_mechanism:
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password.get_secret_value() if k.sasl_password else None,
            mechanism=k.sasl_mechanism,
        )
    if k.tls is not None:
        return faust.SSLCredentials(ssl_context(k))
    return None


def _app(cfg: CloudConfig, partitions: int) -> faust.App:
    datadir = Path(cfg.state_dir).expanduser() / cfg.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        cfg.app_id,
        broker=[f"kafka://{b}" for b in cfg.kafka.bootstrap_servers],
        broker_credentials=_credentials(cfg),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=cfg.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_compression_type="lz4",
    )


def build_app(c: Components) -> tuple[faust.App, DeadFn]:
    """The Faust app with every enabled agent, and its dead-letter sender.

    Start the app with ``faust.Worker``; the sink service sends its dead letters
    through the returned function (``record, reason, detail, component``).
    """
    cfg = c.config
    n = c.partitions
    app = _app(cfg, n)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw", "partitions": n}
    t = cfg.topics
    topics = Topics(
        results=app.topic(t.results, **raw),
        frames=app.topic(t.frames, **raw),
        verdicts=app.topic(t.verdicts, **raw),
        status=app.topic(t.status, **raw),
        telemetry=app.topic(t.telemetry, **raw),
        alerts=app.topic(t.alerts, **raw),
        dlq=app.topic(t.dlq, **raw),
        by_line=app.topic(f"{cfg.app_id}-results-by-line", internal=True, **raw),
        ticks=app.topic(
            f"{cfg.app_id}-ticks",
            internal=True,
            key_serializer="raw",
            value_serializer="json",
            partitions=n,
        ),
    )
    tables = Tables(
        rules=app.Table("rule-state", partitions=n),
        audit=app.Table("audit", partitions=n),
        fleet=app.Table("fleet", partitions=n),
    )
    a = Agents(c, topics, tables)
    if cfg.agents.rules:
        app.agent(topics.results, name="on_results")(a.per_event("on_results", a.on_result))
        app.agent(topics.by_line, name="on_line")(a.per_event("on_line", a.on_line_result))
        app.agent(topics.verdicts, name="on_verdicts")(a.per_event("on_verdicts", a.on_verdict))
        app.agent(topics.status, name="on_status")(a.per_event("on_status", a.on_status))
        app.agent(topics.telemetry, name="on_telemetry")(
            a.per_event("on_telemetry", a.on_telemetry)
        )
        app.agent(topics.ticks, name="on_tick")(a.on_tick)

        async def send_ticks() -> None:
            await a.send_ticks(app.assignor.assigned_actives())

        app.timer(cfg.audit.tick_s, name="send_ticks")(send_ticks)
    if cfg.agents.slowpath and c.slowpath is not None:
        app.agent(topics.frames, name="slowpath", concurrency=cfg.slowpath.concurrency)(a.slowpath)

    async def dead(record: Record, reason: str, detail: str, component: str) -> None:
        await a.dead(record, reason, detail, component)

    return app, dead
