"""``edgeloop bench cloud``: the cloud worker against bare baselines, same run.

1. Slow path: N conveyor frames (320x240 JPEG, as the bridge puts them on the
   frames topic) pre-filled into a fresh topic; a real ``edgeloop cloud worker``
   in the slow-path role (``agents``: slow path and datasets, into a temp dir; rules
   and sink run in other workers, as a plant would scale it) turns them into
   verdicts. Frames per
   second from the first verdict to the last (broker append times), against
   :func:`cloud_stream.slowpath.raw.raw_teacher_frames_per_s` on the same frames
   (decode + preprocess + batched ``session.run``, nothing else), run once before
   the worker starts and once after it stopped (the mean: the load of a shared
   machine drifts).
2. Alert latency: through the whole path. Per sample device, three anomalous
   sensor results go over MQTT v5 (QoS 1) to Mosquitto, through an in-process
   bridge into Kafka, through a full worker's rules (every agent on) (``anomaly_sustained``,
   ``for_windows: 3``) to the alerts topic and its sink into InfluxDB. Latency: the
   third result's capture time to the firing alert answering a Flux query
   (polled every 20 ms).
3. Sink: M results (50 devices, 4 lines) pre-filled into a fresh topic; a second
   worker with only the sink on writes them. Points per second from the first
   committed batch to all M (its /metrics), then the exact count in InfluxDB,
   against :func:`cloud_stream.sink.raw.post_lines` of the same lines (batches of
   5,000, gzip) into another bucket.

Worker start-up (Faust joining its group, 10-20 s) is never timed: inputs are
in Kafka before the worker starts, and rates run from its first output. The
worker's CPU time per frame and per point over the same span is reported too:
it moves less than wall-clock rates when other work shares the machine. Topics
are unique per run and deleted at the end, as are the buckets.
"""

from __future__ import annotations

__all__ = ["run"]

import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_stream.bridge.bench import drop_run_topics
from cloud_stream.bridge.bench_tools import cpu_s, create_topics
from cloud_stream.worker.bench_tools import (
    AlertWatcher,
    Buckets,
    Frame,
    WorkerProcess,
    anomaly_result,
    conveyor_frames,
    frame_record,
    metric_total,
    mqtt_client,
    produce,
    sink_results,
)
from cloud_stream.worker.config import SlowPathConfig
from pipeline.devstack import Devstack, InfluxCredentials
from pipeline.errors import EdgeloopError
from pipeline.modelpkg import builtin_package
from pipeline.schemas import encode, now_ns
from pipeline.topics import mqtt_topic

RULE_ID = "bench_anomaly"
ALERT_TIMEOUT_S = 10.0
POLL_S = 0.02
STALL_S = 30.0
START_S = 120.0
_STREAMS = ("results", "frames", "telemetry", "status", "verdicts", "alerts", "dlq")


def _say(msg: str) -> None:
    print(f"[bench cloud] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Run:
    """What every phase of one run shares."""

    stack: Devstack
    creds: InfluxCredentials
    tag: str
    work: Path

    @property
    def bootstrap(self) -> str:
        return self.stack.kafka_bootstrap

    def topics(self, part: str) -> dict[str, str]:
        return {s: f"bench.{self.tag}.{part}.{s}" for s in _STREAMS}

    def worker_config(
        self, part: str, bucket: str, agents: dict[str, bool], **extra: Any
    ) -> dict[str, Any]:
        return {
            "app_id": f"bench-{self.tag}-{part}",
            "instance": f"bench-{part}",
            "kafka": {"bootstrap_servers": [self.bootstrap]},
            "influx": {"url": self.creds.url, "org": self.creds.org, "bucket": bucket},
            "topics": self.topics(part),
            "partitions": 4,
            "state_dir": str(self.work / "state"),
            "agents": agents,
            "logging": {"level": "WARNING"},
            **extra,
        }


@dataclass(frozen=True)
class _Tick:
    """A counter of the worker changed: when, its value, the worker's CPU seconds so far."""

    t: float
    value: float
    cpu_s: float


def _wait_counter(
    worker: WorkerProcess, name: str, target: float, labels: dict[str, str]
) -> list[_Tick]:
    """Poll a counter every 20 ms until it reaches ``target``; each change seen.

    Gives up after :data:`START_S` without any output, or :data:`STALL_S` without progress.
    """
    assert worker.proc is not None
    seen: list[_Tick] = []
    last_change = time.monotonic()
    value = 0.0
    while value < target:
        worker.check_alive()
        now = time.monotonic()
        text = worker.metrics()
        new = metric_total(text, name, **labels) if text else 0.0
        if new != value:
            value, last_change = new, now
            seen.append(_Tick(now, value, cpu_s(worker.proc.pid)))
        if not seen and now - worker.started_at > START_S:
            raise EdgeloopError(f"worker {worker.name}: no {name} after {START_S:.0f} s")
        if seen and now - last_change > STALL_S:
            _say(f"{name} stalled at {value:.0f} of {target:.0f}")
            break
        time.sleep(POLL_S)
    return seen


def _cpu_per_item(seen: list[_Tick]) -> float | None:
    """Worker CPU seconds per item between the first and the last change seen."""
    if len(seen) < 2 or seen[-1].value <= seen[0].value:
        return None
    return (seen[-1].cpu_s - seen[0].cpu_s) / (seen[-1].value - seen[0].value)


# --- 1. slow path ------------------------------------------------------------------------------
def _slowpath(r: _Run, worker: WorkerProcess, frames: list[Frame], batch: int) -> dict[str, Any]:
    from cloud_stream.bridge.bench_tools import read_topic
    from pipeline.schemas import VerdictV1, decode

    t = r.topics("a")
    labels = list(builtin_package("conveyor-teacher").manifest.labels)
    items = [frame_record(f"bench-{r.tag}", i, f, labels) for i, f in enumerate(frames)]
    sent = {dict(h)["id"].decode() for _, _, h in items}  # frame ids, from the metadata headers
    produce(r.bootstrap, t["frames"], items)
    _say(f"{len(items)} frames in Kafka; starting worker A (all agents)")
    worker.start()
    worker.wait_metrics()
    n = len(items)
    seen = _wait_counter(worker, "edgeloop_worker_processed_total", n, {"agent": "slowpath"})
    records = read_topic(r.bootstrap, t["verdicts"], n, timeout=30, idle_s=0.5)
    ids, stamps = set(), []
    for rec in records:
        v = decode(rec.value)
        if isinstance(v, VerdictV1) and v.frame_id in sent and v.frame_id not in ids:
            ids.add(v.frame_id)  # a redelivered frame's second verdict is not counted
            stamps.append(rec.timestamp)
    stamps.sort()
    span_s = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    # The first batch's verdicts are appended together at the first timestamp: the
    # span covers the frames after it.
    rate = (len(stamps) - batch) / span_s if span_s > 0 and len(stamps) > batch else None
    text = worker.metrics()
    _say(f"slow path: {len(ids)}/{n} frames judged, {rate or 0:.0f} frames/s")
    return {
        "frames": n,
        "slowpath_frames_per_s": None if rate is None else round(rate, 1),
        "slowpath_lost": n - len(ids),
        "verdicts": len(records),
        "dataset_samples": int(metric_total(text, "edgeloop_worker_dataset_samples_total")),
        "slowpath_dlq": int(metric_total(text, "edgeloop_worker_dlq_total", agent="slowpath")),
        "slowpath_worker_cpu_ms_per_frame": _round(_cpu_per_item(seen), 1e3, 2),
        "worker_start_to_first_verdict_s": round(seen[0].t - worker.started_at, 1)
        if seen
        else None,
    }


def _teacher_raw(frames: list[Frame], batch: int, threads: int) -> float:
    from cloud_stream.slowpath.raw import raw_teacher_frames_per_s

    jpegs = [f.jpeg for f in frames]
    return raw_teacher_frames_per_s(
        builtin_package("conveyor-teacher"), jpegs, batch, threads=threads
    )


# --- 2. alert latency ----------------------------------------------------------------------------
def _bridge(r: _Run, site: str) -> Any:
    from cloud_stream.bridge.config import BridgeConfig
    from cloud_stream.bridge.service import Bridge

    t = r.topics("a")
    host, port = r.stack.mqtt_address
    config = BridgeConfig.model_validate(
        {
            "instance": f"bench-{r.tag}-bridge",
            "share_group": f"bench-{r.tag}",
            "site": site,
            "topic_map": {
                "result": t["results"],
                "frame": t["frames"],
                "telemetry": t["telemetry"],
                "status": t["status"],
            },
            "dlq_topic": t["dlq"],
            "mqtt": {"host": host, "port": port, "session_expiry_s": 60},
            "kafka": {"bootstrap_servers": [r.bootstrap]},
            "producer": {"partitions": 4},
            "metrics": {"enabled": False},
            "health": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
    )
    bridge = Bridge(config)
    bridge.start()
    return bridge


def _percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return round(sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)], 1)


def _alert_samples(
    client: Any, watcher: AlertWatcher, site: str, devices: list[str], every_s: float
) -> tuple[list[float], int]:
    """Fire one alert per device, ``every_s`` apart; latencies (ms) and how many never showed."""
    pending: dict[str, int] = {}  # device -> capture ts (ns) of its third result
    latencies: list[float] = []
    lost = 0
    start = time.monotonic()
    nxt = 0
    while nxt < len(devices) or pending:
        polled = time.monotonic()
        while nxt < len(devices) and start + nxt * every_s <= polled:
            device = devices[nxt]
            topic = mqtt_topic(site, device, "result")
            for seq in range(3):
                ts = now_ns()
                client.publish(topic, encode(anomaly_result(site, device, seq, ts)), qos=1)
            pending[device] = ts
            nxt += 1
        firing = watcher.firing()
        seen_ns = time.time_ns()
        for device in firing & pending.keys():
            latencies.append((seen_ns - pending.pop(device)) / 1e6)
        for device, ts in list(pending.items()):
            if seen_ns - ts > ALERT_TIMEOUT_S * 1e9:
                _say(f"alert for {device} never appeared")
                del pending[device]
                lost += 1
        time.sleep(max(0.0, POLL_S - (time.monotonic() - polled)))
    return sorted(latencies), lost


def _alerts(r: _Run, bucket: str, samples: int) -> dict[str, Any]:
    from influxdb_client.client.influxdb_client import InfluxDBClient

    site = f"bench-{r.tag}"
    bridge = _bridge(r, site)
    host, port = r.stack.mqtt_address
    client = mqtt_client(host, port, f"bench-{r.tag}-edge")
    influx: Any = InfluxDBClient(url=r.creds.url, token=r.creds.reader_token, org=r.creds.org)
    try:
        watcher = AlertWatcher(influx, bucket, RULE_ID, now_ns() - 60 * 10**9)
        _say("alert path warm-up (one sample, not counted)")
        _, warm_lost = _alert_samples(client, watcher, site, ["press-warm"], 0)
        if warm_lost:
            raise EdgeloopError("the warm-up alert never reached InfluxDB; see the worker log")
        _say(f"alert latency: {samples} devices, one every 250 ms")
        devices = [f"press-{i:03d}" for i in range(samples)]
        lat, lost = _alert_samples(client, watcher, site, devices, 0.25)
    finally:
        client.disconnect()
        client.loop_stop()
        influx.close()
        bridge.stop(timeout=10)
    _say(f"alerts: p50 {_percentile(lat, 0.5)} ms, p95 {_percentile(lat, 0.95)} ms, lost {lost}")
    return {
        "alert_samples": samples,
        "alert_latency_p50_ms": _percentile(lat, 0.5),
        "alert_latency_p95_ms": _percentile(lat, 0.95),
        "alert_latency_max_ms": round(lat[-1], 1) if lat else None,
        "alerts_lost": lost,
    }


# --- 3. sink --------------------------------------------------------------------------------------
def _sink(r: _Run, worker: WorkerProcess, bucket: str, raw_bucket: str, m: int) -> dict[str, Any]:
    from influxdb_client.client.influxdb_client import InfluxDBClient

    from cloud_stream.sink.points import lines_for
    from cloud_stream.sink.raw import count_points, post_lines

    base_ts = time.time_ns() - m * 1_000_000 - 60 * 10**9
    results = sink_results(f"bench-{r.tag}", m, base_ts)
    produce(
        r.bootstrap,
        r.topics("b")["results"],
        ((x.device.encode(), encode(x), [("content-type", b"application/json")]) for x in results),
    )
    _say(f"{m} results in Kafka; starting worker B (sink only)")
    worker.start()
    worker.wait_metrics()
    seen = _wait_counter(worker, "edgeloop_worker_sink_points_total", m, {"stream": "bulk"})
    rate = None
    if seen and seen[-1].value >= m and seen[-1].value > seen[0].value:
        first, last = seen[0], seen[-1]
        rate = (last.value - first.value) / (last.t - first.t)
    with InfluxDBClient(url=r.creds.url, token=r.creds.reader_token, org=r.creds.org) as client:
        stored = count_points(client, bucket, "result", base_ts, stop=base_ts + m * 1_000_000)
    _say(f"sink: {stored}/{m} points in InfluxDB, {rate or 0:.0f} points/s; raw write baseline")
    worker.stop()
    lines = [line for x in results for line in lines_for(x)]
    seconds = post_lines(
        r.creds.url, r.creds.org, raw_bucket, r.creds.writer_token, lines, batch=5000
    )
    return {
        "points": m,
        "sink_points_per_s": None if rate is None else round(rate),
        "raw_write_points_per_s": round(len(lines) / seconds),
        "sink_lost": m - stored,
        "sink_worker_cpu_us_per_point": _round(_cpu_per_item(seen), 1e6, 1),
    }


def _round(value: float | None, scale: float, digits: int) -> float | None:
    return None if value is None else round(value * scale, digits)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _slow_then_alerts(
    r: _Run,
    bucket: str,
    rules: Path,
    frames: list[Frame],
    batch: int,
    samples: int,
    workers: list[WorkerProcess],
) -> dict[str, Any]:
    """Phases 1 and 2: the slow path on its own worker, then alerts on a full one."""
    report: dict[str, Any] = {}
    # The slow-path role (teacher + datasets), as a plant scales it: its own worker.
    slow_role = {"slowpath": True, "rules": False, "sink": False, "datasets": True}
    a = WorkerProcess(
        r.worker_config("a", bucket, slow_role, datasets={"root": str(r.work / "datasets")}),
        r.work,
        "worker-a",
    )
    workers.append(a)
    report.update(_slowpath(r, a, frames, batch))
    a.stop()
    # Rules and sink for the alert path; the slow path stays on (the full worker).
    all_on = {"slowpath": True, "rules": True, "sink": True, "datasets": True}
    c = WorkerProcess(
        r.worker_config(
            "a",
            bucket,
            all_on,
            rules_file=str(rules),
            datasets={"root": str(r.work / "datasets")},
        ),
        r.work,
        "worker-c",
    )
    workers.append(c)
    c.start()
    c.wait_metrics()
    report.update(_alerts(r, bucket, samples))
    c.stop()
    return report


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return the report.

    Args:
        quick: 256 frames, 30,000 points, 20 alert samples (the full run: 1,024,
            400,000 and 60).
    """
    started = time.perf_counter()
    stack = Devstack()
    if not stack.healthy():
        raise EdgeloopError("the local stack is not running", hint="edgeloop devstack up")
    creds = stack.influx_credentials()
    n_frames, m_points, samples = (256, 30_000, 20) if quick else (1024, 400_000, 60)
    slow_cfg = SlowPathConfig()
    batch = slow_cfg.batch_size
    tag = uuid.uuid4().hex[:8]
    r = _Run(stack, creds, tag, Path(tempfile.mkdtemp(prefix="edgeloop-bench-cloud-")))
    buckets = Buckets(creds)
    workers: list[WorkerProcess] = []
    report: dict[str, Any] = {
        "bench": "cloud",
        "run": tag,  # in the names of its topics and buckets
        "quick": quick,
        "cpu_count": os.cpu_count(),
    }
    try:
        bucket_a = buckets.create(f"bench-{tag}-a")
        bucket_b = buckets.create(f"bench-{tag}-sink")
        bucket_raw = buckets.create(f"bench-{tag}-raw")
        create_topics(r.bootstrap, [*r.topics("a").values(), *r.topics("b").values()])
        rules = r.work / "rules.yaml"
        rules.write_text(
            f"rules:\n  - id: {RULE_ID}\n    kind: anomaly_sustained\n    severity: critical\n"
            "    for_windows: 3\n    clear_windows: 3\n    cooldown_s: 600\n"
        )
        _say(f"run {tag}: simulating {n_frames} conveyor frames")
        frames = conveyor_frames(n_frames, seed=7, work=r.work)
        _say("teacher baseline: bare onnxruntime loop over the same frames")
        raw_runs = [_teacher_raw(frames, batch, slow_cfg.threads)]
        report.update(_slow_then_alerts(r, bucket_a, rules, frames, batch, samples, workers))
        # Once before and once after the worker's run: the machine's load drifts.
        _say("teacher baseline again")
        raw_runs.append(_teacher_raw(frames, batch, slow_cfg.threads))
        raw_fps = sum(raw_runs) / len(raw_runs)
        report["teacher_raw_frames_per_s"] = round(raw_fps, 1)
        report["teacher_raw_runs"] = [round(x, 1) for x in raw_runs]
        report["teacher_batch_size"] = batch
        report["slowpath_ratio"] = _ratio(report["slowpath_frames_per_s"], raw_fps)
        sink_only = {"slowpath": False, "rules": False, "sink": True, "datasets": False}
        b = WorkerProcess(r.worker_config("b", bucket_b, sink_only), r.work, "worker-b")
        workers.append(b)
        report.update(_sink(r, b, bucket_b, bucket_raw, m_points))
        report["sink_ratio"] = _ratio(report["sink_points_per_s"], report["raw_write_points_per_s"])
    finally:
        for w in workers:
            w.stop()
        buckets.close()
        shutil.rmtree(r.work, ignore_errors=True)
        drop_run_topics(stack, tag)
    report["lost"] = report["slowpath_lost"] + report["sink_lost"] + report["alerts_lost"]
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report
