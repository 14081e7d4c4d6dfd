"""One decision per frame or sensor window: infer, route, act, and queue the messages.

This is the hot path of the node. It never touches the network: everything it
produces goes into the durable outbox, so the node keeps deciding while offline.
"""

from __future__ import annotations

__all__ = ["Decider"]

import logging
import threading
import time

from edge_node.actions import ActionRunner
from edge_node.config import EdgeConfig
from edge_node.messages import Origin, anomaly_result, frame_decision
from edge_node.metrics import EdgeMetrics
from edge_node.models import LoadedModel, LoadedModels
from edge_node.outbox import Outbox, OutboxError, OutboxItem, Priority
from edge_node.router import AnomalyGate, RouteDecision, Router
from edge_node.runtime import (
    AnomalyDetector,
    AnomalyWindow,
    Classification,
    ImageClassifier,
    InferenceError,
)
from edge_node.sources.base import Frame, SensorBlock, Source
from pipeline.errors import EdgeloopError
from pipeline.logs import WarnLimiter
from pipeline.modelpkg import AnomalyThresholds, ClassifyThresholds
from pipeline.schemas import new_id
from pipeline.schemas.codec import encode
from pipeline.schemas.properties import to_properties
from pipeline.topics import Stream

logger = logging.getLogger(__name__)

_LOG_EVERY_S = 30.0


class Decider:
    """Turns source items into results (and frames) in the outbox.

    One classifier session per image model is shared by the sources that feed it
    (guarded by a lock: onnxruntime sessions are thread-safe, but one core is
    the budget); each sensor source gets its own detector and gate, because they
    hold that source's window and hysteresis state.
    """

    def __init__(self, config: EdgeConfig, models: LoadedModels, outbox: Outbox) -> None:
        self.config = config
        self.outbox = outbox
        self.metrics = EdgeMetrics()
        self._classifiers: dict[str, ImageClassifier] = {}
        self._routers: dict[str, Router] = {}
        self._detectors: dict[str, AnomalyDetector] = {}
        self._gates: dict[str, AnomalyGate] = {}
        self._window_count: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        lines = {s.name: s.line for s in config.sources}
        self._origins = {
            name: Origin(config.site, config.device, name, lines.get(name), m.ref)
            for name, m in models.for_source.items()
        }
        self._models_of = models.for_source
        self._limiters: dict[str, WarnLimiter] = {}
        #: Held while taking seqs and storing the messages that carry them.
        self.seq_lock = threading.Lock()
        self.actions = ActionRunner(config.actions, metrics=self.metrics, mqtt=config.mqtt)
        for src_name, model in models.for_source.items():
            manifest = model.package.manifest
            if model.kind == "image":
                if model.key not in self._classifiers:
                    clf = ImageClassifier(model.package, threads=model.threads, warmup=model.warmup)
                    self._classifiers[model.key] = clf
                    self._locks[model.key] = threading.Lock()
                assert isinstance(manifest.thresholds, ClassifyThresholds)
                self._routers[src_name] = Router(config.router, manifest.thresholds)
            else:
                self._detectors[src_name] = AnomalyDetector(
                    model.package, threads=model.threads, warmup=model.warmup
                )
                assert isinstance(manifest.thresholds, AnomalyThresholds)
                self._gates[src_name] = AnomalyGate(manifest.thresholds)
                self._window_count[src_name] = 0

    # -- entry ------------------------------------------------------------------------

    def handle(self, src: Source, item: Frame | SensorBlock) -> None:
        """Decide on one item; errors are counted and logged, never raised."""
        model = self._models_of[src.name]
        try:
            if isinstance(item, Frame):
                self._frame(src, item)
            else:
                for window in self._detectors[src.name].push(item):
                    self._window(src, item, window)
        except InferenceError as exc:
            self.metrics.observe_inference_error(model.ref.name)
            self._log_limited(f"{src.name}:infer", "model %s failed: %s", model.ref.name, exc)
        except OutboxError as exc:
            # Not bad input: the disk is full or broken. Loud, and counted apart.
            src.count_error("outbox")
            self._log_limited(
                f"{src.name}:outbox", "cannot queue a decision: %s", exc, level=logging.ERROR
            )
        except (EdgeloopError, ValueError) as exc:
            kind = getattr(exc, "reason", None) or (
                "unreadable" if isinstance(item, Frame) else "bad_block"
            )
            src.count_error(kind)
            self.metrics.count_input_error(src.name, kind)
            self._log_limited(
                f"{src.name}:{kind}", "source %s: %s (counted as %s)", src.name, exc, kind
            )

    def _log_limited(self, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = WarnLimiter(logger, _LOG_EVERY_S, level=level)
        limiter.warn(msg, *args)

    # -- images -----------------------------------------------------------------------

    def _frame(self, src: Source, frame: Frame) -> None:
        model = self._models_of[src.name]
        with self._locks[model.key]:
            cls = self._classifiers[model.key].classify(frame.image)
        decision = self._routers[src.name].route(src.name, cls, frame.image)
        action = self.actions.maybe_fire(
            source=src.name,
            label=cls.label,
            score=cls.score,
            route=decision.route,
            mono_ns=frame.mono_ns,
            ts_ns=frame.ts_ns,
        )
        latency_ms = (time.perf_counter_ns() - frame.mono_ns) / 1e6
        origin = self._origins[src.name]
        # Take seqs and store under one lock, so rows reach the outbox in seq order
        # even with several sources and telemetry putting at once.
        with self.seq_lock:
            batch = self._frame_messages(origin, frame, cls, decision, action, latency_ms)
            self.outbox.put_many(batch)
        frame_id_sent = decision.upload and decision.jpeg is not None
        self.metrics.observe_decision(
            source=src.name,
            model=model.ref.name,
            route=decision.route,
            infer_ms=cls.latency_ms,
            decision_ms=latency_ms,
            skipped=decision.skipped,
            uploaded=frame_id_sent,
        )

    def _frame_messages(
        self,
        origin: Origin,
        frame: Frame,
        cls: Classification,
        decision: RouteDecision,
        action: str | None,
        latency_ms: float,
    ) -> list[OutboxItem]:
        """The result, and the frame when uploaded, with fresh seqs (call under seq_lock)."""
        result, upload = frame_decision(
            origin,
            next_seq=self.outbox.next_seq,
            ts=frame.ts_ns,
            cls=cls,
            decision=decision,
            action=action,
            latency_ms=latency_ms,
        )
        batch = [OutboxItem(Stream.RESULT, encode(result), result.seq, None, Priority.RESULT)]
        if upload is not None:
            meta, jpeg = upload
            props = dict(to_properties(meta))
            batch.append(OutboxItem(Stream.FRAME, jpeg, meta.seq, props, Priority.FRAME))
        return batch

    # -- sensors ----------------------------------------------------------------------

    def _window(self, src: Source, block: SensorBlock, window: AnomalyWindow) -> None:
        model: LoadedModel = self._models_of[src.name]
        manifest = model.package.manifest
        assert isinstance(manifest.thresholds, AnomalyThresholds)
        if window.sensor_fault is not None or window.score is None:
            fault = window.sensor_fault or "unscored"
            src.count_error(f"sensor_{fault}")
            self.metrics.count_sensor_fault(src.name, fault)
            self._log_limited(
                f"{src.name}:sf",
                "source %s: sensor fault %s on channel %s; window not scored",
                src.name,
                fault,
                window.fault_channel,
            )
            return
        transition = self._gates[src.name].update(window.score)
        active = self._gates[src.name].active
        route = "anomalous" if active else "normal"
        self.metrics.observe_anomaly(
            src.name, model.ref.name, window.score, route, infer_ms=window.latency_ms
        )
        # Local actions see every window; only publishing is thinned below.
        action = self.actions.maybe_fire(
            source=src.name,
            label="anomaly" if active else "normal",
            score=window.score,
            route=route,
            mono_ns=window.mono_ns,
            ts_ns=window.ts_ns,
        )
        # Transitions and windows that fired an action always go out; otherwise
        # every Nth window, so a steady state is visible without one message per window.
        self._window_count[src.name] += 1
        thinned = self._window_count[src.name] % self.config.anomaly.every
        if transition is None and action is None and thinned:
            return
        latency_ms = (time.perf_counter_ns() - window.mono_ns) / 1e6
        with self.seq_lock:
            result = anomaly_result(
                self._origins[src.name],
                result_id=new_id(),
                seq=self.outbox.next_seq(),
                window=window,
                score=window.score,
                active=active,
                action=action,
                latency_ms=latency_ms,
                window_s=manifest.input.window_s,  # type: ignore[union-attr]
                threshold=manifest.thresholds.raise_at,
            )
            self.outbox.put(
                Stream.RESULT,
                encode(result),
                seq=result.seq,
                priority=Priority.ALERT if active else Priority.RESULT,
            )

    def close(self) -> None:
        """Stop the action workers."""
        self.actions.close()
