"""Entry of ``edgeloop bench edge``: runs both halves and prints the figures with targets."""

from __future__ import annotations

__all__ = ["run"]

import logging
import os
import sys
import time
from typing import Any

from edge_node.bench.sensor import bench_anomaly
from edge_node.bench.vision import SEED, bench_vision, frames, median, pct
from edge_node.router import RouterConfig
from edge_node.runtime import ImageClassifier
from pipeline.modelpkg import builtin_package

logger = logging.getLogger(__name__)

DRIFT_CONDITIONS = ("dim_light", "color_cast", "new_finish", "camera_shift")

TARGETS = {
    "int8_size_ratio": ">= 3.5",
    "int8_accuracy": "within 0.005 of fp32_accuracy",
    "int8_fp32_agreement": ">= 0.99",
    "int8_speedup": ">= 1.5",
    "decision_p99_ms": "<= 10",
    "escalation_rate": "<= 0.10",
    "combined_accuracy": ">= teacher_accuracy - 0.005",
    "upstream_bytes_ratio": ">= 100",
    "anomaly_auc": ">= 0.95",
    "escalation_rate_drift": "clearly above escalation_rate",
}


def _say(msg: str) -> None:
    print(f"[bench edge] {msg}", file=sys.stderr, flush=True)


def run(quick: bool = False) -> dict[str, Any]:
    """Run the bench; ``quick`` keeps it under a minute."""
    import cv2

    cv2.setNumThreads(1)
    n = 300 if quick else 2000
    n_drift = 120 if quick else 500
    t_start = time.perf_counter()
    int8_pkg = builtin_package("conveyor-int8")
    fp32_pkg = builtin_package("conveyor-fp32")
    teacher_pkg = builtin_package("conveyor-teacher")
    int8 = ImageClassifier(int8_pkg, threads=1, warmup=20)
    fp32 = ImageClassifier(fp32_pkg, threads=1, warmup=20)
    teacher = ImageClassifier(teacher_pkg, threads=1, warmup=3)
    router_config = RouterConfig()

    _say(f"rendering {n} in-distribution frames (4 cameras, seeds {SEED}..{SEED + 3})")
    base = frames(n, seed=SEED)
    _say("in-distribution: INT8 decision path, FP32 and teacher on every frame")
    fig = bench_vision(base, int8, fp32, teacher, int8_pkg, router_config)

    drift: dict[str, float] = {}
    for i, cond in enumerate(DRIFT_CONDITIONS):
        _say(f"drift {cond}: {n_drift} frames")
        items = frames(n_drift, seed=SEED + 100 * (i + 1), condition=cond)
        d = bench_vision(items, int8, fp32, teacher, int8_pkg, router_config, with_speed=False)
        drift[cond] = round(d.escalated / max(d.n, 1), 4)
        drift[f"{cond}_input_drift"] = round(d.input_drift / max(d.n, 1), 4)
        drift[f"{cond}_int8_accuracy"] = round(d.int8_correct / max(d.n, 1), 4)

    _say("sensor anomaly model on injected machine faults")
    sensor = bench_anomaly(
        builtin_package("machine-anomaly-int8"), seconds_per_phase=20 if quick else 60, seed=SEED
    )

    fp32_ms = median(fig.fp32_ms)
    int8_ms = median(fig.int8_ms)
    mean_decision = sum(fig.decision_ms) / max(len(fig.decision_ms), 1)
    report: dict[str, Any] = {
        "bench": "edge",
        "quick": quick,
        "frames": fig.n,
        "frame_size": "640x480",
        "threads": 1,
        "cpu_count": os.cpu_count(),
        "int8_size_ratio": round(fp32_pkg.manifest.bytes / int8_pkg.manifest.bytes, 3),
        "int8_bytes": int8_pkg.manifest.bytes,
        "fp32_bytes": fp32_pkg.manifest.bytes,
        "fp32_accuracy": round(fig.fp32_correct / fig.n, 4),
        "int8_accuracy": round(fig.int8_correct / fig.n, 4),
        "int8_fp32_agreement": round(fig.agree / fig.n, 4),
        "int8_inference_p50_ms": round(int8_ms, 3),
        "fp32_inference_p50_ms": round(fp32_ms, 3),
        "int8_speedup": round(fp32_ms / int8_ms, 3),
        "decision_p50_ms": round(pct(fig.decision_ms, 50), 3),
        "decision_p99_ms": round(pct(fig.decision_ms, 99), 3),
        "frames_per_s": round(1000.0 / mean_decision, 1),
        "escalation_rate": round(fig.escalated / fig.n, 4),
        "routes": fig.routes,
        "uploaded_frames": fig.uploaded,
        "combined_accuracy": round(fig.combined_correct / fig.n, 4),
        "combined_accuracy_if_all_escalated_rechecked": round(fig.oracle_correct / fig.n, 4),
        "escalated_uploaded": fig.rechecked,
        "input_drift_rate": round(fig.input_drift / fig.n, 4),
        "teacher_accuracy": round(fig.teacher_correct / fig.n, 4),
        "upstream_bytes_ratio": round(fig.jpeg_every_frame_bytes / max(fig.sent_bytes, 1), 1),
        "upstream_bytes_per_frame": round(fig.sent_bytes / fig.n, 1),
        "baseline_jpeg_bytes_per_frame": round(fig.jpeg_every_frame_bytes / fig.n, 1),
        "drift_condition": DRIFT_CONDITIONS[0],
        "escalation_rate_drift": drift[DRIFT_CONDITIONS[0]],
        "escalation_rate_drift_by_condition": {k: drift[k] for k in DRIFT_CONDITIONS},
        "input_drift_rate_by_condition": {k: drift[f"{k}_input_drift"] for k in DRIFT_CONDITIONS},
        "int8_accuracy_drift_by_condition": {
            k: drift[f"{k}_int8_accuracy"] for k in DRIFT_CONDITIONS
        },
        **sensor,
        "targets": TARGETS,
        "camera_fps_assumed_for_budget": 10.0,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    return report
