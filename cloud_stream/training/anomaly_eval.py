"""Evaluation of anomaly packages on ``test.csv``: AUC per fault, FP32/INT8 agreement, latency.

What it covers: the model is judged on **machine faults** (windows whose every
sample carries one fault label, against normal windows). **Sensor faults**
(NaN/dropout, out-of-range spikes, stuck values) are first put through the same
value check the edge runtime applies before the model (finite, inside each
channel's ``min``/``max``, not constant); the report gives the share caught
there, and the model's AUC on the windows that pass (e.g. a window with a
spike that stays in range).
Windows that straddle two labels are left out.
"""

from __future__ import annotations

__all__ = ["evaluate_packages", "value_check"]

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.anomaly_data import ChannelSpec, load_split, windows
from cloud_stream.training.anomaly_model import Scorer, auc, session
from cloud_stream.training.anomaly_plot import draw_report

logger = logging.getLogger(__name__)

MACHINE_FAULTS = ("bearing_wear", "imbalance", "overheating")
SENSOR_FAULTS = ("stuck", "dropout", "spike")


def value_check(wins: np.ndarray, specs: tuple[ChannelSpec, ...]) -> np.ndarray:
    """True for windows (normalised, (n, C, w)) that pass the edge's value check.

    As in ``edge_node.runtime.anomaly`` with its defaults: every value finite and inside
    its channel's physical range, and no channel exactly constant (stuck).
    """
    mean = np.array([s.mean for s in specs])[None, :, None]
    std = np.array([s.std for s in specs])[None, :, None]
    lo = np.array([s.min for s in specs])[None, :, None]
    hi = np.array([s.max for s in specs])[None, :, None]
    raw = wins.astype(np.float64) * std + mean
    with np.errstate(invalid="ignore"):
        inside = (raw >= lo) & (raw <= hi)
        # max > min, not std > 0: the std of a constant float array is rarely exactly 0.
        moving = np.max(raw, axis=2) > np.min(raw, axis=2)  # NaN windows fail anyway
    return np.asarray(
        np.isfinite(raw).all(axis=(1, 2)) & inside.all(axis=(1, 2)) & moving.all(axis=1)
    )


def _latency_ms(paths: list[Path], input_name: str, shape: tuple[int, ...]) -> list[float]:
    """Median single-window latency per model, one thread, measured interleaved."""
    sessions = [session(str(p)) for p in paths]
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32)
    times: list[list[float]] = [[] for _ in paths]
    for s in sessions:
        for _ in range(20):
            s.run(None, {input_name: x})
    for _ in range(5):
        for i, s in enumerate(sessions):
            for _ in range(100):
                t = time.perf_counter()
                s.run(None, {input_name: x})
                times[i].append((time.perf_counter() - t) * 1e3)
    return [float(np.median(t)) for t in times]


def _severity_of(meta: dict[str, Any], starts_s: np.ndarray) -> np.ndarray:
    sev = np.zeros(starts_s.shape)
    for f in meta.get("test_schedule", []):
        on = (starts_s >= f["start_s"]) & (starts_s < f["start_s"] + f["duration_s"])
        sev[on] = f["severity"]
    return sev


def _package_metrics(
    scores: np.ndarray, labels: np.ndarray, passed: np.ndarray, sev: np.ndarray, raise_at: float
) -> dict[str, float]:
    normal = scores[(labels == "normal") & passed]
    out: dict[str, float] = {"normal_windows": float(normal.size)}
    faults = [f for f in MACHINE_FAULTS if (labels == f).any()]
    for f in faults:
        sel = (labels == f) & passed
        out[f"auc_{f}"] = auc(normal, scores[sel])
        out[f"detected_{f}"] = float(np.mean(scores[sel] >= raise_at))
        for s in np.unique(sev[sel]):
            out[f"auc_{f}@{s:g}"] = auc(normal, scores[sel & (sev == s)])
    if faults:
        out["auc"] = auc(normal, scores[np.isin(labels, faults) & passed])
    out["false_alarm_rate"] = float(np.mean(normal >= raise_at)) if normal.size else float("nan")
    for f in SENSOR_FAULTS:
        sel = labels == f
        if sel.any():
            out[f"value_check_caught_{f}"] = float(np.mean(~passed[sel]))
            if (sel & passed).any():
                out[f"auc_{f}_after_value_check"] = auc(normal, scores[sel & passed])
    return out


def evaluate_packages(packages: list[Path], data: Path, out: Path) -> int:
    """Write ``report.json``, ``report.md`` and ``report.png`` comparing ``packages`` on test.csv.

    The first package is the reference for score agreement (pass FP32 first).
    """
    from pipeline.modelpkg import load_package

    pkgs = [load_package(p) for p in packages]
    first = pkgs[0].manifest
    assert first.input.kind == "sensor"
    specs = tuple(
        ChannelSpec(name=c.name, mean=c.mean, std=c.std, min=c.min, max=c.max, unit=c.unit)
        for c in first.input.channels
    )
    test = load_split(data, "test")
    assert test is not None
    wins, labels, starts = windows(test, specs, window=first.input.window, hop=first.input.hop)
    passed = value_check(wins, specs)
    meta_file = data / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    sev = _severity_of(meta, starts)
    latencies = _latency_ms(
        [p.onnx_path for p in pkgs], first.input.name, (len(specs), first.input.window)
    )
    results: list[dict[str, Any]] = []
    all_scores: list[np.ndarray] = []
    for pkg, lat in zip(pkgs, latencies, strict=True):
        scores = np.full(wins.shape[0], np.nan)
        scores[passed] = Scorer(str(pkg.onnx_path))(wins[passed])
        all_scores.append(scores)
        raise_at = float(getattr(pkg.manifest.thresholds, "raise_at", np.inf))
        entry: dict[str, Any] = {
            "package": str(pkg.path),
            "name": pkg.manifest.name,
            "version": pkg.manifest.version,
            "precision": pkg.manifest.precision,
            "bytes": pkg.manifest.bytes,
            "latency_ms": lat,
            "thresholds": pkg.manifest.thresholds.model_dump(),
            "metrics": _package_metrics(scores, labels, passed, sev, raise_at),
        }
        if results:
            ref, raise_ref = all_scores[0], results[0]["thresholds"]["raise_at"]
            both = passed & np.isfinite(ref) & np.isfinite(scores)
            entry["vs_reference"] = {
                "decision_agreement": float(
                    np.mean((ref[both] >= raise_ref) == (scores[both] >= raise_at))
                ),
                "score_correlation": float(np.corrcoef(ref[both], scores[both])[0, 1]),
                "median_rel_score_err": float(
                    np.median(np.abs(scores[both] - ref[both]) / np.maximum(ref[both], 1e-6))
                ),
            }
        results.append(entry)
    counts = {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True), strict=True)}
    report = {
        "data": str(test.path).replace(str(Path.home()), "~"),
        "windows": counts,
        "window": first.input.window,
        "hop": first.input.hop,
        "rate_hz": test.rate_hz,
        "covers": "AUC over machine faults (bearing_wear, imbalance, overheating) vs normal "
        "windows; sensor faults (stuck, dropout, spike) go through the edge value check first "
        "(share caught reported), the model is scored on what passes; mixed-label windows "
        "are excluded",
        "latency": "median of 500 single-window runs, onnxruntime CPU, 1 thread, interleaved",
        "packages": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report))
    draw_report(out / "report.png", all_scores, labels, starts, results)
    for r in results:
        m = r["metrics"]
        print(
            f"{r['name']} {r['precision']}: AUC {m.get('auc', float('nan')):.4f}, "
            f"{r['bytes']} bytes, {r['latency_ms']:.3f} ms"
        )
    print(f"report: {out / 'report.md'}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    pk = report["packages"]
    lines = [
        "# Anomaly model evaluation",
        "",
        f"Data: `{report['data']}`, windows of {report['window']} samples at "
        f"{report['rate_hz']:g} Hz, hop {report['hop']}. Windows per label: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["windows"].items()))
        + ".",
        "",
        f"Coverage: {report['covers']}.",
        "",
        "| metric | " + " | ".join(f"{p['name']} ({p['precision']})" for p in pk) + " |",
        "|---|" + "---|" * len(pk),
    ]
    keys = sorted({k for p in pk for k in p["metrics"]})
    for k in keys:
        vals = [p["metrics"].get(k) for p in pk]
        lines.append(
            f"| {k} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in vals) + " |"
        )
    lines.append("| bytes | " + " | ".join(str(p["bytes"]) for p in pk) + " |")
    lines.append(
        f"| latency_ms ({report['latency']}) | "
        + " | ".join(f"{p['latency_ms']:.3f}" for p in pk)
        + " |"
    )
    lines.append(
        "| raise_at | " + " | ".join(f"{p['thresholds']['raise_at']:.4g}" for p in pk) + " |"
    )
    lines.append(
        "| clear_at | " + " | ".join(f"{p['thresholds']['clear_at']:.4g}" for p in pk) + " |"
    )
    for p in pk[1:]:
        v = p["vs_reference"]
        lines += [
            "",
            f"{p['name']} vs {pk[0]['name']}: alarm decisions agree on "
            f"{v['decision_agreement']:.2%} of windows, score correlation "
            f"{v['score_correlation']:.4f}, median relative score error "
            f"{v['median_rel_score_err']:.2%}.",
        ]
    lines += [
        "",
        f"Thresholds: {pk[0]['thresholds']['calibration']}.",
        "",
        "![ROC curves and score timeline](report.png)",
        "",
    ]
    return "\n".join(lines)
