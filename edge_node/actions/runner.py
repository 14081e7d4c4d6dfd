"""Local actions: stop a line or ring a bell on a decision, without the cloud.

Each configured action says *when* (labels, minimum score, routes, sources) and
*what*: publish an MQTT message or run a command. :class:`ActionRunner` matches
every decision, honours each action's cooldown and measures capture-to-action
latency (the frame's ``mono_ns`` to the moment the action was issued).

Threads: MQTT publishes are issued on the caller's thread, because paho's
``publish`` only queues the packet for its network loop (microseconds). Commands
run on one worker thread fed by a small bounded queue, so inference never waits
for a process; when the queue is full the action is dropped and counted.

MQTT connection: pass the paho client the node already has (``mqtt_client``)
to publish through it, or let the runner open its own connection to the
``mqtt`` broker (default: the local Mosquitto on 127.0.0.1:1883), which keeps
local actions working while the uplink to the cloud is down. Templates: see
:mod:`edge_node.actions.config`.
"""

from __future__ import annotations

__all__ = ["ActionError", "ActionEvent", "ActionRunner"]

import logging
import queue
import string
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_node.actions.config import ActionConfig, ActionWhen, CommandDo, MqttDo
from edge_node.metrics import EdgeMetrics
from pipeline.config.base import MqttConfig
from pipeline.errors import EdgeloopError

logger = logging.getLogger(__name__)


class ActionError(EdgeloopError):
    """Actions cannot be set up (e.g. duplicate names)."""


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """The decision an action may fire on.

    Attributes:
        source: Source name.
        label: Decided label (``anomaly``/``normal`` for sensor windows).
        score: Top-1 probability or anomaly score.
        route: The decision's route.
        mono_ns: ``perf_counter_ns()`` when the frame/window was in hand.
        ts_ns: Capture time, UTC ns (for templates).
    """

    source: str
    label: str
    score: float
    route: str
    mono_ns: int
    ts_ns: int = 0


def _matches(when: ActionWhen, ev: ActionEvent) -> bool:
    if when.labels is not None and ev.label not in when.labels:
        return False
    if ev.score < when.min_score:
        return False
    if when.sources is not None and ev.source not in when.sources:
        return False
    if when.routes is not None:
        route = "confident" if ev.route == "audit" and "audit" not in when.routes else ev.route
        if route not in when.routes:
            return False
    return True


class ActionRunner:
    """Matches decisions to actions and issues them; never raises into inference.

    Args:
        actions: Configured actions.
        metrics: Where to record action latency and errors.
        mqtt_client: A connected (or connecting) paho client to publish through.
        mqtt: Broker of the runner's own connection when ``mqtt_client`` is None.
        clock: Monotonic seconds for cooldowns (injectable for tests).
        queue_size: Commands waiting for the worker before new ones are dropped.
    """

    def __init__(
        self,
        actions: Sequence[ActionConfig],
        *,
        metrics: EdgeMetrics | None = None,
        mqtt_client: Any | None = None,
        mqtt: MqttConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        queue_size: int = 16,
    ) -> None:
        names = [a.name for a in actions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ActionError(
                f"duplicate action names {dupes}", where="actions", hint="give each a unique name"
            )
        self.actions = list(actions)
        self.metrics = metrics
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[ActionConfig, ActionEvent] | None] = queue.Queue(
            maxsize=queue_size
        )
        self._worker: threading.Thread | None = None
        self._client = mqtt_client
        self._own_client = False
        self._started = False
        self._mqtt = mqtt or MqttConfig()
        self.fired: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the command worker and, if needed, the runner's own MQTT connection.

        Called by the first action that fires when the owner did not call it.
        """
        with self._lock:
            if self._started:
                return
            if self._worker is None and any(a.do.type == "command" for a in self.actions):
                self._worker = threading.Thread(target=self._work, name="actions", daemon=True)
                self._worker.start()
            if self._client is None and any(a.do.type == "mqtt" for a in self.actions):
                self._client = self._connect()
                self._own_client = True
            self._started = True

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued commands finish (up to ``timeout``), then stop; safe to call twice."""
        self._started = False
        if self._worker is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                logger.warning("action queue still full at stop; dropping the rest")
            self._worker.join(timeout)
            self._worker = None
        if self._own_client and self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self._own_client = False

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> ActionRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connect(self) -> Any:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        cfg = self._mqtt
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if cfg.username:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            client.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.cert_file,
                           keyfile=cfg.tls.key_file)  # fmt: skip
            client.tls_insecure_set(cfg.tls.insecure)
        client.reconnect_delay_set(int(max(1, cfg.reconnect_min_s)), int(cfg.reconnect_max_s))
        try:
            client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            raise ActionError(
                f"cannot connect to the action broker {cfg.host}:{cfg.port}: {exc}",
                where="actions.mqtt",
                hint="check the broker address of local actions",
            ) from exc
        client.loop_start()
        return client

    # --- matching and firing ------------------------------------------------------------
    def match(self, event: ActionEvent) -> list[ActionConfig]:
        """Actions whose conditions the event meets (cooldowns not considered)."""
        return [a for a in self.actions if _matches(a.when, event)]

    def maybe_fire(
        self,
        *,
        source: str,
        label: str,
        score: float | None,
        route: str,
        mono_ns: int,
        ts_ns: int = 0,
    ) -> str | None:
        """Issue every action that matches this decision and is not cooling down.

        Args:
            source: Source name.
            label: Decided label.
            score: Top-1 probability or anomaly score (None counts as 0).
            route: The decision's route.
            mono_ns: ``perf_counter_ns()`` when the frame/window was in hand.
            ts_ns: Capture time, UTC ns (for templates).

        Returns:
            The name of the first action issued (for ``ResultV1.action``), or None.
        """
        event = ActionEvent(source, label, float(score or 0.0), route, mono_ns, ts_ns)
        return self.fire(event)

    def fire(self, event: ActionEvent) -> str | None:
        """Issue every matching action not in cooldown; see :meth:`maybe_fire`."""
        first: str | None = None
        for action in self.match(event):
            now = self._clock()
            with self._lock:
                last = self._last.get(action.name)
                if last is not None and now - last < action.cooldown_s:
                    continue
                self._last[action.name] = now
            try:
                issued = self._issue(action, event)
            except Exception:  # an action must never take inference down
                logger.exception("action %s failed", action.name)
                self._error(action.name, "internal")
                issued = False
            if issued and first is None:
                first = action.name
        return first

    def _issue(self, action: ActionConfig, event: ActionEvent) -> bool:
        if not self._started:
            self.start()
        if isinstance(action.do, MqttDo):
            return self._publish(action, action.do, event)
        try:
            self._queue.put_nowait((action, event))
        except queue.Full:
            logger.warning("action %s dropped: %d commands still waiting", action.name,
                           self._queue.qsize())  # fmt: skip
            self._error(action.name, "dropped")
            return False
        return True

    def _fields(self, action: ActionConfig, ev: ActionEvent) -> dict[str, str]:
        return {
            "label": ev.label,
            "score": f"{ev.score:.6g}",
            "source": ev.source,
            "route": ev.route,
            "ts_ns": str(ev.ts_ns),
            "action": action.name,
        }

    def _publish(self, action: ActionConfig, do: MqttDo, ev: ActionEvent) -> bool:
        if self._client is None:
            self._error(action.name, "not_started")
            logger.warning("action %s: runner not started, no MQTT client", action.name)
            return False
        payload = string.Template(do.payload).substitute(self._fields(action, ev))
        info = self._client.publish(do.topic, payload.encode(), qos=do.qos, retain=do.retain)
        self._issued(action.name, ev)
        if info.rc != 0:
            # paho keeps QoS>0 messages and sends them after reconnecting; count it.
            logger.warning("action %s: publish rc=%s (not connected?)", action.name, info.rc)
            self._error(action.name, "publish")
        return True

    def _issued(self, name: str, ev: ActionEvent) -> None:
        ms = (time.perf_counter_ns() - ev.mono_ns) / 1e6
        with self._lock:
            self.fired[name] = self.fired.get(name, 0) + 1
        if self.metrics is not None:
            self.metrics.observe_action(name, ms)
        logger.info("action %s issued for %s %s (%.1f ms after capture)", name, ev.source,
                    ev.label, ms)  # fmt: skip

    def _error(self, name: str, kind: str) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.metrics is not None:
            self.metrics.observe_action_error(name, kind)

    # --- command worker -----------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued command has finished; returns False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._run_command(*item)
            except Exception:
                logger.exception("action worker error")
            finally:
                self._queue.task_done()

    def _run_command(self, action: ActionConfig, ev: ActionEvent) -> None:
        assert isinstance(action.do, CommandDo)
        fields = self._fields(action, ev)
        argv = [string.Template(a).substitute(fields) for a in action.do.argv]
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            logger.error("action %s: cannot run %s: %s", action.name, argv[0], exc)
            self._error(action.name, "spawn")
            return
        self._issued(action.name, ev)
        try:
            _, err = proc.communicate(timeout=action.do.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            logger.error("action %s: killed after %.1f s", action.name, action.do.timeout_s)
            self._error(action.name, "timeout")
            return
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            logger.error("action %s: exit %d: %s", action.name, proc.returncode, tail)
            self._error(action.name, "exit")
