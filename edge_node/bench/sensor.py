"""Sensor half of the edge bench: anomaly AUC on injected machine faults."""

from __future__ import annotations

__all__ = ["MACHINE_FAULTS", "auc", "bench_anomaly"]

import numpy as np

from edge_node.runtime import AnomalyDetector
from edge_node.sources.base import SensorBlock
from edge_node.sources.machine import FaultSpec, MachineConfig, MachineSource
from pipeline.modelpkg import ModelPackage

MACHINE_FAULTS = ("bearing_wear", "imbalance", "overheating")


def auc(negatives: list[float], positives: list[float]) -> float:
    """ROC AUC: the chance that a random positive scores above a random negative (ties 1/2)."""
    if not negatives or not positives:
        return float("nan")
    neg = np.asarray(negatives)
    pos = np.asarray(positives)
    scores = np.concatenate([neg, pos])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average ranks over ties.
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    r_pos = ranks[len(neg) :].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def bench_anomaly(pkg: ModelPackage, *, seconds_per_phase: float, seed: int) -> dict[str, object]:
    """Score a machine that runs normal, then each fault in turn, with normal gaps between."""
    faults = []
    t = seconds_per_phase  # normal first
    for name in MACHINE_FAULTS:
        faults.append(FaultSpec(fault=name, start_s=t, duration_s=seconds_per_phase))
        t += 2 * seconds_per_phase
    cfg = MachineConfig(
        name="bench-machine",
        seed=seed,
        realtime=False,
        duration_s=t,
        faults=tuple(faults),
    )
    src = MachineSource(cfg)
    det = AnomalyDetector(pkg, threads=1)
    src.open()
    by_truth: dict[str, list[float]] = {}
    faults_seen = 0
    latencies: list[float] = []
    while not src.exhausted:
        item = src.read(timeout=1.0)
        if not isinstance(item, SensorBlock):
            continue
        for w in det.push(item):
            if w.score is None:
                faults_seen += 1
                continue
            latencies.append(w.latency_ms)
            by_truth.setdefault(item.truth or "normal", []).append(float(w.score))
    src.close()
    normal = by_truth.get("normal", [])
    positives = [s for name in MACHINE_FAULTS for s in by_truth.get(name, [])]
    return {
        "anomaly_auc": round(auc(normal, positives), 4),
        "anomaly_auc_per_fault": {
            name: round(auc(normal, by_truth.get(name, [])), 4) for name in MACHINE_FAULTS
        },
        "anomaly_windows": {k: len(v) for k, v in sorted(by_truth.items())},
        "anomaly_window_p50_ms": round(float(np.median(latencies)), 3) if latencies else None,
    }
