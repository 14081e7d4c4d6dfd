"""What the worker's agents do with each record; :mod:`cloud_stream.worker.app` wires them.

Every handler runs inside Faust's stream iteration (tables may only change
there) and is wrapped by :meth:`Agents.guarded`: an exception in one message
sends it to the DLQ with ``processing_error`` and the agent goes on. Records
that fail to decode are dead-lettered once, by the sink (or by the slow path for
frames); the other agents skip them.
"""

from __future__ import annotations

__all__ = ["Agents", "Tables", "Topics"]

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cloud_stream.alerts.evaluator import Evaluator
from cloud_stream.alerts.rules import DefectRateRule
from cloud_stream.datasets.pool import SampleWriter
from cloud_stream.datasets.sample import SampleMeta
from cloud_stream.drift.audit import AgreementAudit, DriftFigure, ScoreShift
from cloud_stream.kafka_conn import partition_of
from cloud_stream.sink.points import drift_line, fleet_line
from cloud_stream.worker import fleet
from cloud_stream.worker.components import Components
from cloud_stream.worker.records import Record, dead_letter, decode_frame, decode_json
from pipeline.errors import SchemaError
from pipeline.logs import WarnLimiter
from pipeline.schemas import AlertV1, ResultV1, StatusV1, TelemetryV1, VerdictV1, encode

logger = logging.getLogger(__name__)

Handler = Callable[[Record], Awaitable[None]]


def is_line_scoped(ev: Evaluator[Any, Any]) -> bool:
    """Whether a rule's state is keyed by line (so it needs the by-line topic)."""
    return isinstance(ev.rule, DefectRateRule) and ev.rule.scope == "line"


def kafka_key_of_state(ev: Evaluator[Any, Any], key: str) -> str:
    """The Kafka key whose partition holds state ``key`` (``rule|site/device/...``)."""
    subject = key.split("|", 1)[1]
    if is_line_scoped(ev):
        return subject  # site/line: the key of the by-line topic
    parts = subject.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Topics:
    """The Faust topics the agents read and write."""

    results: Any
    frames: Any
    verdicts: Any
    status: Any
    telemetry: Any
    alerts: Any
    dlq: Any
    by_line: Any
    ticks: Any


@dataclass(frozen=True)
class Tables:
    """Changelog-backed tables (JSON values), co-partitioned with the input topics."""

    rules: Any  # "rule|subject" -> evaluator state
    audit: Any  # "agree|site/device/model@version" or "shift|..." -> audit state
    fleet: Any  # device -> fleet row


def _audit_key(kind: str, site: str, device: str, name: str, version: str) -> str:
    return f"{kind}|{site}/{device}/{name}@{version}"


def _record(event: Any) -> Record:
    m = event.message
    return Record(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers or ()))


class Agents:
    """The handlers of every agent, sharing the components, topics and tables."""

    def __init__(self, c: Components, topics: Topics, tables: Tables):
        self.c = c
        self.cfg = c.config
        self.topics = topics
        self.tables = tables
        self.m = c.metrics
        self.component = f"{self.cfg.app_id}/{self.cfg.instance}"
        self.has_line_rules = any(is_line_scoped(ev) for ev in c.evaluators)
        self._published: dict[str, Any] = {}  # fleet device -> row revision last written
        self._last_publish: dict[int, float] = {}
        self._dlq_warn = WarnLimiter(logger)

    # --- shared ------------------------------------------------------------------
    async def dead(self, record: Record, reason: str, detail: str, agent: str) -> None:
        """Send ``record`` to the DLQ with why (awaited: committed offsets imply it)."""
        d = dead_letter(record, reason, detail, component=f"{self.component}/{agent}")  # type: ignore[arg-type]
        await self.topics.dlq.send(key=d.key, value=d.value, headers=d.headers)
        self.m.dlq.labels(agent, reason).inc()
        first = detail.splitlines()[0] if detail else ""
        self._dlq_warn.warn("%s: %s to the DLQ (%s): %s", agent, record.where, reason, first)

    async def emit(self, alerts: list[AlertV1]) -> None:
        """Publish alert events to the alerts topic (key: the subject)."""
        for a in alerts:
            await self.topics.alerts.send(key=a.device.encode(), value=encode(a))
            self.m.alerts.labels(a.rule, a.state).inc()
            logger.info("alert %s %s %s: %s", a.rule, a.state, a.device, a.summary)

    def run_rules(self, msg: Any, kind: str, *, line_scoped: bool) -> list[AlertV1]:
        """Feed ``msg`` to the rules that read ``kind`` messages; their alerts."""
        out: list[AlertV1] = []
        table = self.tables.rules
        for ev in self.c.evaluators:
            if kind not in ev.consumes or is_line_scoped(ev) != line_scoped:
                continue
            for key in ev.keys(msg):
                st = ev.state(key, table.get(key))
                out.extend(ev.observe(msg, st))
                table[key] = st.to_state()
        return out

    async def guarded(self, agent: str, event: Any, handler: Handler) -> None:
        """Run ``handler`` on one event; errors go to the DLQ, never up."""
        record = _record(event)
        started = time.perf_counter()
        try:
            await handler(record)
        except SchemaError:
            self.m.processed.labels(f"{agent}-skipped").inc()  # the sink dead-letters it
            return
        except Exception as exc:
            self.m.errors.labels(agent).inc()
            logger.exception("%s: error on %s", agent, record.where)
            await self.dead(record, "processing_error", f"{type(exc).__name__}: {exc}", agent)
            return
        self.m.processed.labels(agent).inc()
        self.m.processing.labels(agent).observe(time.perf_counter() - started)

    def per_event(self, agent: str, handler: Handler) -> Callable[[Any], Awaitable[None]]:
        """A Faust agent function that runs ``handler`` on each event."""

        async def run(stream: Any) -> None:
            async for event in stream.events():
                await self.guarded(agent, event, handler)

        run.__name__ = run.__qualname__ = agent
        return run

    # --- per-message handlers -------------------------------------------------------
    async def on_result(self, record: Record) -> None:
        """Fleet row, score shift, device rules; forward to the by-line topic."""
        msg = decode_json(record, expect=ResultV1)
        assert isinstance(msg, ResultV1)
        fl = self.tables.fleet
        fl[msg.device] = fleet.observe_result(fl.get(msg.device), msg)
        ref = self.c.registry.score_reference(msg.model)
        if ref is not None:
            key = _audit_key("shift", msg.site, msg.device, msg.model.name, msg.model.version)
            data = self.tables.audit.get(key)
            a = self.cfg.audit
            shift = ScoreShift.from_state(data) if data else ScoreShift(ref, a.window_s, a.step_s)
            shift.observe(msg)
            self.tables.audit[key] = shift.to_state()
        await self.emit(self.run_rules(msg, "result", line_scoped=False))
        if self.has_line_rules and msg.line is not None:
            key_line = f"{msg.site}/{msg.line}".encode()
            await self.topics.by_line.send(key=key_line, value=record.value)

    async def on_line_result(self, record: Record) -> None:
        """Line-scoped rules, on results re-keyed by site/line."""
        msg = decode_json(record, expect=ResultV1)
        await self.emit(self.run_rules(msg, "result", line_scoped=True))

    async def on_verdict(self, record: Record) -> None:
        """Agreement audit and drift rules."""
        msg = decode_json(record, expect=VerdictV1)
        assert isinstance(msg, VerdictV1)
        em = msg.edge_model
        key = _audit_key("agree", msg.site, msg.device, em.name, em.version)
        data = self.tables.audit.get(key)
        a = self.cfg.audit
        audit = AgreementAudit.from_state(data) if data else AgreementAudit(a.window_s, a.step_s)
        audit.observe(msg)
        self.tables.audit[key] = audit.to_state()
        await self.emit(self.run_rules(msg, "verdict", line_scoped=False))

    async def on_status(self, record: Record) -> None:
        """Fleet row and the offline rule."""
        msg = decode_json(record, expect=StatusV1)
        assert isinstance(msg, StatusV1)
        fl = self.tables.fleet
        fl[msg.device] = fleet.observe_status(fl.get(msg.device), msg)
        await self.emit(self.run_rules(msg, "status", line_scoped=False))

    async def on_telemetry(self, record: Record) -> None:
        """Fleet row and gauge rules."""
        msg = decode_json(record, expect=TelemetryV1)
        assert isinstance(msg, TelemetryV1)
        fl = self.tables.fleet
        fl[msg.device] = fleet.observe_telemetry(fl.get(msg.device), msg)
        await self.emit(self.run_rules(msg, "telemetry", line_scoped=False))

    # --- ticks: time-based rules, clean-up, derived points --------------------------------
    async def on_tick(self, stream: Any) -> None:
        """One tick per partition: offline rules, idle state, drift and fleet points."""
        async for event in stream.events():
            p = event.message.partition
            value = event.value or {}
            now = int(value.get("now") or self.c.clock())
            try:
                await self.emit(self._tick_rules(p, now))
                await self._publish(p, now)
                self.m.devices.set(len(self.tables.fleet))
            except Exception:
                self.m.errors.labels("on_tick").inc()
                logger.exception("on_tick: partition %d", p)

    def _tick_rules(self, p: int, now: int) -> list[AlertV1]:
        alerts: list[AlertV1] = []
        table = self.tables.rules
        n = self.c.partitions
        for key, data in list(table.items()):
            ev = next((e for e in self.c.evaluators if e.owns(key)), None)
            if ev is None or partition_of(kafka_key_of_state(ev, key).encode(), n) != p:
                continue  # another partition's, or a rule removed from the file
            st = ev.state(key, data)
            if ev.ticks:
                alerts.extend(ev.tick(now, st))
            if ev.idle(now, st):
                del table[key]
            elif ev.ticks:
                table[key] = st.to_state()
        return alerts

    async def _publish(self, p: int, now: int) -> None:
        writer = self.c.writer
        due = self._last_publish.get(p, 0.0) + self.cfg.audit.publish_every_s
        if writer is None or time.monotonic() < due:
            return
        self._last_publish[p] = time.monotonic()
        lines = self._fleet_lines(p, now) + self._drift_lines(p, now)
        if lines:
            await asyncio.get_running_loop().run_in_executor(None, writer.write, lines)
            self.m.derived_points.inc(len(lines))

    def _fleet_lines(self, p: int, now: int) -> list[str]:
        lines = []
        for device, row in list(self.tables.fleet.items()):
            if partition_of(device.encode(), self.c.partitions) != p:
                continue
            # By revision, not time: a message with an older timestamp (devices' clocks
            # differ) still changes the row, and the point at changed_ns is rewritten.
            if self._published.get(device) == row.get("rev"):
                continue
            lines.append(
                fleet_line(
                    site=row["site"],
                    device=device,
                    ts_ns=int(row["changed_ns"]) or now,
                    state=row["state"],
                    model=row["model"] or None,
                    software=row["software"] or None,
                    last_seen_ns=int(row["last_seen_ns"]) or None,
                    outbox_depth=row["outbox_depth"],
                    escalation_rate=fleet.escalation_rate(row),
                    results=int(row["results"]),
                )
            )
            self._published[device] = row.get("rev")
        return lines

    def _drift_lines(self, p: int, now: int) -> list[str]:
        figures: list[DriftFigure] = []
        for key, data in list(self.tables.audit.items()):
            device = key.split("|", 1)[1].split("/")[1]
            if partition_of(device.encode(), self.c.partitions) != p:
                continue
            if key.startswith("agree|"):
                figures.extend(AgreementAudit.from_state(data).figures(now))
            else:
                one = ScoreShift.from_state(data).figure(now)
                figures.extend([] if one is None else [one])
        return [
            drift_line(
                site=f.site,
                device=f.device,
                model=f.model,
                model_version=f.model_version,
                cls=f.label,
                ts_ns=f.ts_ns,
                agreement=f.agreement,
                verdicts=f.verdicts,
                psi=f.psi,
                results=f.results,
            )
            for f in figures
        ]

    async def send_ticks(self, assigned: Any) -> None:
        """Timer body: one tick to each ticks partition this worker owns."""
        name = self.topics.ticks.get_topic_name()
        now = self.c.clock()
        for tp in assigned:
            if tp.topic == name:
                await self.topics.ticks.send(
                    key=b"tick", value={"now": now}, partition=tp.partition
                )

    # --- the slow path ------------------------------------------------------------------------
    async def slowpath(self, stream: Any) -> None:
        """Micro-batches of frames -> teacher -> verdicts (+ dataset samples)."""
        sp = self.cfg.slowpath
        async for events in stream.take_events(sp.batch_size, within=sp.batch_wait_ms / 1000):
            started = time.perf_counter()
            try:
                await self._judge([_record(e) for e in events])
            except Exception as exc:  # a bug, not bad input: say so, keep going
                self.m.errors.labels("slowpath").inc()
                logger.exception("slowpath: batch of %d failed", len(events))
                for e in events:
                    await self.dead(
                        _record(e), "processing_error", f"{type(exc).__name__}: {exc}", "slowpath"
                    )
            self.m.processed.labels("slowpath").inc(len(events))
            self.m.processing.labels("slowpath").observe(time.perf_counter() - started)

    async def _judge(self, records: list[Record]) -> None:
        slow = self.c.slowpath
        assert slow is not None
        frames = []
        for record in records:
            try:
                frames.append((record, decode_frame(record)))
            except SchemaError as exc:
                await self.dead(record, exc.reason, str(exc), "slowpath")
        if not frames:
            return
        loop = asyncio.get_running_loop()
        judged = await loop.run_in_executor(None, slow.judge, frames)
        self.m.teacher_batch.observe(len(frames))
        keep: list[tuple[bytes, SampleMeta]] = []
        for j in judged:
            if j.verdict is None:
                await self.dead(j.record, j.reason or "processing_error", j.detail, "slowpath")
                continue
            v = j.verdict
            await self.topics.verdicts.send(key=v.device.encode(), value=encode(v))
            self.m.verdicts.labels("true" if v.agree else "false").inc()
            if self.c.samples is not None:
                keep.append((j.record.value, SampleMeta.from_verdict(v, j.meta)))
        if keep and self.c.samples is not None:
            added = await loop.run_in_executor(None, _add_samples, self.c.samples, keep)
            self.m.samples.inc(added)


def _add_samples(writer: SampleWriter, items: list[tuple[bytes, SampleMeta]]) -> int:
    return sum(1 for jpeg, meta in items if writer.add(jpeg, meta))
