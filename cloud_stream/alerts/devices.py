"""Evaluators of device health: offline or silent, telemetry gauge out of range."""

from __future__ import annotations

__all__ = ["DeviceOfflineEvaluator", "TelemetryGaugeEvaluator"]

from typing import Any

from cloud_stream.alerts.engine import format_duration
from cloud_stream.alerts.evaluator import Evaluator, fmt_number
from cloud_stream.alerts.rules import DeviceOfflineRule, TelemetryGaugeRule
from cloud_stream.alerts.states import DeviceState, GaugeState
from pipeline.schemas import AlertV1, ResultV1, StatusV1, TelemetryV1

_NS = 1_000_000_000


class DeviceOfflineEvaluator(Evaluator[DeviceOfflineRule, DeviceState]):
    """``device_offline``: a device offline or silent for ``after_s`` (fires on tick).

    The device is down since the newest event time heard from it. While its last
    status is ``offline``, results and telemetry (a backlog drained late) neither
    refresh that time nor resolve the alert; the ``online`` status sent on every
    reconnect does. After a plain silence, any message resolves it. The ``ts`` of
    an MQTT last will is the time of the connect it was set at, so the newest
    message before it, not the will, says when the device was last alive.
    """

    consumes = frozenset({"result", "status", "telemetry"})
    ticks = True

    def keys(self, message: object) -> list[str]:
        """One key per status, result or telemetry: its device."""
        if not isinstance(message, ResultV1 | StatusV1 | TelemetryV1):
            return []
        return [self._key(message.site, message.device)]

    def new_state(self, key: str) -> DeviceState:
        """A fresh state."""
        return DeviceState(key, self.rule.id)

    def load_state(self, data: dict[str, Any]) -> DeviceState:
        """Rebuild a state."""
        return DeviceState.from_state(data)

    def observe(
        self, message: ResultV1 | StatusV1 | TelemetryV1, state: DeviceState
    ) -> list[AlertV1]:
        """Record the message; resolve when the device is back (firing waits for a tick)."""
        state.site, state.device = message.site, message.device
        if isinstance(message, StatusV1):
            state.status, state.reason = message.state, message.reason
        elif state.status == "offline":
            return []
        down_since = state.last_seen_ns
        if state.last_seen_ns is None or message.ts > state.last_seen_ns:
            state.last_seen_ns = message.ts
        if state.status == "offline" or not state.tracker.firing:
            return []
        return self._evaluate(message.ts, state, down_since)

    def tick(self, now_ns: int, state: DeviceState) -> list[AlertV1]:
        """Fire when the device has been offline or silent for ``after_s`` at ``now_ns``."""
        if state.tracker.firing or state.last_seen_ns is None:
            return []
        return self._evaluate(now_ns, state, state.last_seen_ns)

    def _evaluate(self, now_ns: int, state: DeviceState, down_since: int | None) -> list[AlertV1]:
        rule = self.rule
        assert state.last_seen_ns is not None
        down_s = max(now_ns - state.last_seen_ns, 0) / _NS
        condition = down_s >= rule.after_s
        if condition == state.tracker.firing:
            return []
        if condition:
            value = down_s
            if state.status == "offline":
                why = f"offline for {format_duration(down_s)}"
                if state.reason:
                    why += f" ({state.reason})"
            else:
                why = f"silent for {format_duration(down_s)}: no status, result or telemetry"
            summary = f"device {state.device}: {why} (after {format_duration(rule.after_s)})"
        else:
            value = max(now_ns - (down_since or now_ns), 0) / _NS
            summary = f"device {state.device}: back after {format_duration(value)}"
        return self._out(
            state.tracker.update(
                rule,
                str(state.device),
                condition,
                value,
                now_ns,
                site=str(state.site),
                summary=summary,
                labels={"status": state.status or "unknown"},
                threshold=rule.after_s,
            )
        )


class TelemetryGaugeEvaluator(Evaluator[TelemetryGaugeRule, GaugeState]):
    """``telemetry_gauge``: one gauge of a device's telemetry out of range."""

    consumes = frozenset({"telemetry"})

    def keys(self, message: object) -> list[str]:
        """One key per telemetry snapshot that has the gauge: its device."""
        if not isinstance(message, TelemetryV1) or self.rule.gauge not in message.gauges:
            return []
        return [self._key(message.site, message.device)]

    def new_state(self, key: str) -> GaugeState:
        """A fresh state."""
        return GaugeState(key, self.rule.id)

    def load_state(self, data: dict[str, Any]) -> GaugeState:
        """Rebuild a state."""
        return GaugeState.from_state(data)

    def observe(self, message: TelemetryV1, state: GaugeState) -> list[AlertV1]:
        """Fire after ``for_samples`` snapshots out of range; resolve on the first in range."""
        rule = self.rule
        value = message.gauges.get(rule.gauge)
        if value is None or (state.last_seq is not None and message.seq <= state.last_seq):
            return []
        state.last_seq, state.last_value = message.seq, value
        high = rule.above is not None and value > rule.above
        low = rule.below is not None and value < rule.below
        state.breach_run = state.breach_run + 1 if high or low else 0
        firing = state.tracker.firing
        if not firing and state.breach_run >= rule.for_samples:
            condition = True
            what = (
                f"{rule.gauge} {fmt_number(value)} above {fmt_number(rule.above)}"
                if high and rule.above is not None
                else f"{rule.gauge} {fmt_number(value)} below {fmt_number(rule.below or 0.0)}"
            )
        elif firing and not (high or low):
            condition = False
            what = f"{rule.gauge} back to {fmt_number(value)} ({self._limits()})"
        else:
            return []
        return self._out(
            state.tracker.update(
                rule,
                message.device,
                condition,
                value,
                message.ts,
                site=message.site,
                summary=f"device {message.device}: {what}",
                labels={"gauge": rule.gauge},
                threshold=self._threshold(low),
            )
        )

    def _threshold(self, low: bool) -> float | None:
        if low or self.rule.above is None:
            return self.rule.below
        return self.rule.above

    def _limits(self) -> str:
        parts = []
        if self.rule.above is not None:
            parts.append(f"above {fmt_number(self.rule.above)}")
        if self.rule.below is not None:
            parts.append(f"below {fmt_number(self.rule.below)}")
        return "limit: " + " or ".join(parts)
