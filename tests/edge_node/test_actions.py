"""Local actions: matching, cooldown, a real command, MQTT (fake client and real Mosquitto)."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_node.actions import ActionConfig, ActionError, ActionEvent, ActionRunner
from edge_node.metrics import EdgeMetrics
from pipeline.config.base import MqttConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeInfo:
    rc = 0


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> FakeInfo:
        self.published.append((topic, payload, qos, retain))
        return FakeInfo()


def action(**fields: Any) -> ActionConfig:
    base: dict[str, Any] = {
        "name": "stop-line",
        "when": {"labels": ["crack"], "min_score": 0.8, "routes": ["confident", "uncertain"]},
        "do": {"type": "mqtt", "topic": "plant/line1/stop", "payload": '{"why": "$label"}'},
        "cooldown_s": 2,
    }
    base.update(fields)
    return ActionConfig.model_validate(base)


def fire(runner: ActionRunner, **kw: Any) -> str | None:
    ev: dict[str, Any] = {
        "source": "cam0",
        "label": "crack",
        "score": 0.9,
        "route": "confident",
        "mono_ns": time.perf_counter_ns(),
    }
    ev.update(kw)
    return runner.maybe_fire(**ev)


# --- config --------------------------------------------------------------------------
def test_config_is_a_discriminated_union():
    a = action(do={"type": "command", "argv": ["true"], "timeout_s": 1})
    assert a.do.type == "command"
    with pytest.raises(ValidationError, match="argv"):
        action(do={"type": "command", "topic": "x"})
    with pytest.raises(ValidationError):
        action(do={"type": "email", "to": "x"})


@pytest.mark.parametrize(
    "bad",
    [
        {"do": {"type": "mqtt", "topic": "a/+/b"}},
        {"do": {"type": "mqtt", "topic": "a/b", "payload": "$nope"}},
        {"do": {"type": "command", "argv": ["echo", "${label"]}},
        {"name": "bad name"},
        {"cooldown_s": -1},
        {"when": {"routes": ["sideways"]}},
    ],
)
def test_config_rejects(bad):
    with pytest.raises(ValidationError):
        action(**bad)


def test_duplicate_names_rejected():
    with pytest.raises(ActionError, match="duplicate"):
        ActionRunner([action(), action()])


# --- matching ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "fires"),
    [
        ({}, True),
        ({"label": "ok"}, False),
        ({"score": 0.79}, False),
        ({"route": "uncertain"}, True),
        ({"route": "audit"}, True),  # an audit sample is a confident decision
        ({"route": "anomalous"}, False),
    ],
)
def test_matching(event, fires):
    runner = ActionRunner([action()], mqtt_client=FakeClient())
    assert (fire(runner, **event) == "stop-line") is fires


def test_sources_filter_and_any_defaults():
    runner = ActionRunner(
        [action(name="a", when={"sources": ["cam1"]}), action(name="b", when={})],
        mqtt_client=FakeClient(),
    )
    ev = ActionEvent("cam0", "whatever", 0.0, "normal", 0)
    assert [a.name for a in runner.match(ev)] == ["b"]
    assert [a.name for a in runner.match(ActionEvent("cam1", "x", 0, "normal", 0))] == ["a", "b"]


def test_mqtt_publish_payload_and_cooldown():
    client, clock, metrics = FakeClient(), FakeClock(), EdgeMetrics()
    runner = ActionRunner([action()], mqtt_client=client, clock=clock, metrics=metrics)
    assert fire(runner) == "stop-line"
    assert client.published == [("plant/line1/stop", b'{"why": "crack"}', 1, False)]
    clock.now += 1.9
    assert fire(runner) is None  # cooling down
    clock.now += 0.2
    assert fire(runner) == "stop-line"
    assert len(client.published) == 2
    assert runner.fired == {"stop-line": 2}
    counters, gauges = metrics.snapshot()
    assert counters["actions.fired"] == 2
    assert gauges["latency.action_p99_ms"] >= 0


def test_first_fired_name_is_returned_and_all_matching_fire():
    client = FakeClient()
    runner = ActionRunner(
        [action(name="first"), action(name="second", do={"type": "mqtt", "topic": "b"})],
        mqtt_client=client,
    )
    assert fire(runner) == "first"
    assert [p[0] for p in client.published] == ["plant/line1/stop", "b"]


def test_publish_failure_is_counted_not_raised():
    class Broken:
        def publish(self, *a: Any, **k: Any) -> Any:
            raise RuntimeError("boom")

    metrics = EdgeMetrics()
    runner = ActionRunner([action()], mqtt_client=Broken(), metrics=metrics)
    assert fire(runner) is None
    assert runner.errors == {"internal": 1}
    assert metrics.snapshot()[0]["actions.errors"] == 1


# --- commands ------------------------------------------------------------------------
def test_command_runs_a_real_shell_and_measures_latency(tmp_path: Path):
    out = tmp_path / "fired.txt"
    metrics = EdgeMetrics()
    cmd = action(
        name="ring",
        do={
            "type": "command",
            "argv": ["sh", "-c", f'echo "$$1 $$2" > {out}', "sh", "$label", "$source"],
        },
    )
    with ActionRunner([cmd], metrics=metrics) as runner:
        mono = time.perf_counter_ns()
        assert fire(runner, mono_ns=mono) == "ring"
        assert runner.wait_idle(10)
    assert out.read_text() == "crack cam0\n"
    assert runner.fired == {"ring": 1}
    assert runner.errors == {}
    _, gauges = metrics.snapshot()
    assert 0 < gauges["latency.action_p99_ms"] < 10_000
    assert b'edgeloop_edge_action_seconds_count{action="ring"} 1.0' in metrics.exposition()[0]


def test_command_does_not_block_the_caller(tmp_path: Path):
    cmd = action(do={"type": "command", "argv": ["sleep", "1"], "timeout_s": 5})
    with ActionRunner([cmd]) as runner:
        t0 = time.perf_counter()
        assert fire(runner) == "stop-line"
        assert time.perf_counter() - t0 < 0.5
        runner.wait_idle(10)


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["sh", "-c", "exit 3"], "exit"),
        (["/nonexistent/program"], "spawn"),
        (["sleep", "5"], "timeout"),
    ],
)
def test_command_failures_are_counted(argv, kind):
    cmd = action(do={"type": "command", "argv": argv, "timeout_s": 0.2})
    metrics = EdgeMetrics()
    with ActionRunner([cmd], metrics=metrics) as runner:
        fire(runner)
        assert runner.wait_idle(10)
    assert runner.errors == {kind: 1}
    assert metrics.snapshot()[0]["actions.errors"] == 1


def test_full_queue_drops_and_counts():
    cmd = action(do={"type": "command", "argv": ["sleep", "0.3"]}, cooldown_s=0)
    runner = ActionRunner([cmd], queue_size=1)
    try:
        results = [fire(runner) for _ in range(5)]
        assert results[0] == "stop-line"
        assert results.count(None) >= 2
        assert runner.errors["dropped"] >= 2
    finally:
        runner.close()


def test_lazy_start_and_close_twice(tmp_path: Path):
    out = tmp_path / "x"
    runner = ActionRunner([action(do={"type": "command", "argv": ["touch", str(out)]})])
    assert fire(runner) == "stop-line"  # no start(): the first action starts the worker
    assert runner.wait_idle(10)
    runner.close()
    runner.close()
    assert out.exists()


# --- the real broker -----------------------------------------------------------------
@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[str, int]]:
    from pipeline.config.devstack import DevstackConfig
    from pipeline.devstack import Devstack

    stack = Devstack(DevstackConfig(), lambda msg: print(msg, file=sys.__stderr__))
    started = stack.up(["mosquitto"])
    yield stack.mqtt_address
    if started:
        stack.down(started)


@pytest.mark.integration
def test_mqtt_action_reaches_a_real_subscriber(broker: tuple[str, int]):
    import paho.mqtt.client as mqtt

    host, port = broker
    topic = f"test/{uuid.uuid4().hex[:12]}/line1/stop"
    got: list[bytes] = []
    subscribed, received, connected = threading.Event(), threading.Event(), threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_connect = lambda *a: connected.set()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda _c, _u, msg: (got.append(msg.payload), received.set())
    sub.connect(host, port)
    sub.loop_start()
    try:
        assert connected.wait(10)
        sub.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        cfg = action(do={"type": "mqtt", "topic": topic, "payload": "stop $source $score"})
        metrics = EdgeMetrics()
        with ActionRunner([cfg], mqtt=MqttConfig(host=host, port=port), metrics=metrics) as runner:
            deadline = time.monotonic() + 10
            while not runner._client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.02)  # the runner connects asynchronously; nothing to await
            assert fire(runner, score=0.95) == "stop-line"
            assert received.wait(10), "the subscriber got nothing"
        assert got == [b"stop cam0 0.95"]
        assert metrics.snapshot()[0]["actions.fired"] == 1
    finally:
        sub.disconnect()
        sub.loop_stop()
