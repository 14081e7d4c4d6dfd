"""Evaluation of classifier packages: figures, ``report.json``, ``report.md`` and a plot.

The first package is the reference for agreement, size and speed ratios (give the
FP32 model first). The edge model of the cascade is the first INT8 package (else
the first); the teacher is the package whose name contains ``teacher`` (else the
last). The cascade decides with the edge model where it is confident and with
the teacher where the edge model escalates.

When ``data`` is a folder of simulator datasets (each with a ``dataset.json``),
the in-distribution one is evaluated on its test split and every drift dataset
on all its images (none of them were trained on).
"""

from __future__ import annotations

__all__ = ["evaluate_packages", "write_report"]

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.calibrate import confident_mask, predict, session
from cloud_stream.training.imagefolder import (
    ImageDataset,
    TrainingDataError,
    collection,
    load_split,
    to_input,
)
from cloud_stream.training.plot import draw_plot
from pipeline.modelpkg import ClassifyThresholds, ImageInput, ModelPackage, load_package

logger = logging.getLogger(__name__)

LATENCY_ROUNDS = 5
LATENCY_RUNS = 40


def _shown(path: Path) -> str:
    """A path for the report: relative to the working directory or ``~`` when it can be."""
    path = path.resolve()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return str(path)


def _items(dataset: ImageDataset, *, drift: bool) -> list[tuple[Path, int]]:
    if drift:
        return [it for s in ("train", "val", "test") for it in dataset.split(s)]
    items = dataset.split("test")
    if not items:
        raise TrainingDataError(
            "the dataset has no test split",
            where=str(dataset.root),
            hint="add root/test/<label>/ folders (or use the flat layout, split by hash)",
        )
    return items


def _latencies(pkgs: list[ModelPackage], samples: list[np.ndarray]) -> list[float]:
    """Median single-thread latency per package, measured in interleaved rounds."""
    sessions = [session(p.onnx_path, threads=1) for p in pkgs]
    names = [s.get_inputs()[0].name for s in sessions]
    times: list[list[float]] = [[] for _ in pkgs]
    for s, n, x in zip(sessions, names, samples, strict=True):
        for _ in range(10):
            s.run(None, {n: x})
    for _ in range(LATENCY_ROUNDS):
        for k, (s, n, x) in enumerate(zip(sessions, names, samples, strict=True)):
            for _ in range(LATENCY_RUNS):
                t = time.perf_counter()
                s.run(None, {n: x})
                times[k].append(time.perf_counter() - t)
    return [float(np.median(t) * 1000.0) for t in times]


def _predict_all(
    pkgs: list[ModelPackage], dataset: ImageDataset, *, drift: bool
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Probabilities per package, true label names, and one input sample per package."""
    items = _items(dataset, drift=drift)
    truth = np.array([dataset.labels[y] for _, y in items])
    cache: dict[str, np.ndarray] = {}
    probs, samples = [], []
    for pkg in pkgs:
        spec = pkg.manifest.input
        assert isinstance(spec, ImageInput)
        key = spec.model_dump_json()
        if key not in cache:
            xs, _ = load_split(items, spec, what=f"{dataset.root.name} images")
            cache[key] = to_input(xs, spec)
        probs.append(predict(session(pkg.onnx_path, threads=2), cache[key]))
        samples.append(cache[key][:1])
    return probs, truth, samples


def _figures(
    pkg: ModelPackage, probs: np.ndarray, truth: np.ndarray
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    m = pkg.manifest
    labels = np.array(m.labels)
    pred = labels[probs.argmax(1)]
    assert isinstance(m.thresholds, ClassifyThresholds)
    conf = confident_mask(probs, m.labels, m.thresholds)
    per_class = {}
    extra = sorted(set(truth.tolist()) - set(m.labels))
    for lab in [*m.labels, *extra]:
        tp = int(((pred == lab) & (truth == lab)).sum())
        npred, ntrue = int((pred == lab).sum()), int((truth == lab).sum())
        per_class[lab] = {
            "precision": tp / npred if npred else float("nan"),
            "recall": tp / ntrue if ntrue else float("nan"),
            "support": ntrue,
        }
    correct = pred == truth
    return (
        {
            "accuracy": float(correct.mean()),
            "escalation_rate": float(1.0 - conf.mean()),
            "confident_accuracy": float(correct[conf].mean()) if conf.any() else float("nan"),
            "per_class": per_class,
            "confusion": {
                t: {p: int(((truth == t) & (pred == p)).sum()) for p in m.labels}
                for t in sorted(set(truth.tolist()))
            },
        },
        pred,
        conf,
    )


def _roles(pkgs: list[ModelPackage]) -> tuple[int, int | None]:
    edge = next((i for i, p in enumerate(pkgs) if p.manifest.precision == "int8"), 0)
    teacher = next((i for i, p in enumerate(pkgs) if "teacher" in p.manifest.name), None)
    if teacher is None and len(pkgs) > 1:
        teacher = len(pkgs) - 1
    return edge, (teacher if teacher != edge else None)


def evaluate_packages(packages: list[Path], data: Path) -> dict[str, Any]:
    """All figures of the report, as a JSON-ready dict."""
    if not packages:
        raise TrainingDataError("no packages to evaluate", hint="give --package at least once")
    pkgs = [load_package(p) for p in packages]
    for p in pkgs:
        if p.manifest.task != "classify":
            raise TrainingDataError(
                "not a classifier package", where=str(p.path), hint="evaluate vision packages"
            )
    datasets = collection(data)
    main, drifts = datasets[0], datasets[1:]
    edge, teacher = _roles(pkgs)
    probs, truth, samples = _predict_all(pkgs, main, drift=main.condition is not None)
    logger.info("measuring single-thread latency of %d packages", len(pkgs))
    lat = _latencies(pkgs, samples)
    ref = pkgs[0]
    rows: list[dict[str, Any]] = []
    preds, confs = [], []
    for k, pkg in enumerate(pkgs):
        figs, pred, conf = _figures(pkg, probs[k], truth)
        preds.append(pred)
        confs.append(conf)
        figs.update(
            name=pkg.manifest.name,
            version=pkg.manifest.version,
            precision=pkg.manifest.precision,
            path=_shown(pkg.path),
            bytes=pkg.manifest.bytes,
            latency_ms=lat[k],
            agreement_with_first=float((pred == preds[0]).mean()),
            size_ratio_vs_first=ref.manifest.bytes / pkg.manifest.bytes,
            speedup_vs_first=lat[0] / lat[k],
            accuracy_delta_vs_first=figs["accuracy"] - float((preds[0] == truth).mean()),
        )
        rows.append(figs)
    report: dict[str, Any] = {
        "data": _shown(main.root),
        "images": len(truth),
        "packages": rows,
        "edge": pkgs[edge].manifest.name,
        "teacher": pkgs[teacher].manifest.name if teacher is not None else None,
    }
    if teacher is not None:
        combined = np.where(confs[edge], preds[edge], preds[teacher])
        report["cascade"] = {
            "accuracy": float((combined == truth).mean()),
            "escalation_rate": float(1.0 - confs[edge].mean()),
            "teacher_accuracy": rows[teacher]["accuracy"],
        }
    report["drift"] = {}
    for ds in drifts:
        dprobs, dtruth, _ = _predict_all(pkgs, ds, drift=True)
        entry: dict[str, Any] = {"images": len(dtruth), "packages": {}}
        dpreds, dconfs = [], []
        for k, pkg in enumerate(pkgs):
            figs, pred, conf = _figures(pkg, dprobs[k], dtruth)
            dpreds.append(pred)
            dconfs.append(conf)
            entry["packages"][pkg.manifest.name] = {
                key: figs[key] for key in ("accuracy", "escalation_rate", "confident_accuracy")
            }
        if teacher is not None:
            combined = np.where(dconfs[edge], dpreds[edge], dpreds[teacher])
            entry["cascade_accuracy"] = float((combined == dtruth).mean())
        report["drift"][ds.condition or ds.root.name] = entry
    return report


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{100 * v:.2f}%"


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    rows = report["packages"]
    lines = [
        "# Model evaluation",
        "",
        f"Data: `{report['data']}`, test split, {report['images']} images. "
        f"Latency: median of single-frame runs, onnxruntime CPU, one thread. "
        f"Ratios are against the first package (`{rows[0]['name']}`).",
        "",
        "| package | precision | accuracy | escalation | confident acc. | agreement | "
        "size | size ratio | latency | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} {r['version']} | {r['precision']} | {_pct(r['accuracy'])} | "
            f"{_pct(r['escalation_rate'])} | {_pct(r['confident_accuracy'])} | "
            f"{r['agreement_with_first']:.4f} | {r['bytes'] / 1024:.1f} KiB | "
            f"{r['size_ratio_vs_first']:.2f}x | {r['latency_ms']:.3f} ms | "
            f"{r['speedup_vs_first']:.2f}x |"
        )
    if "cascade" in report:
        c = report["cascade"]
        lines += [
            "",
            f"**Cascade** (`{report['edge']}` where confident, `{report['teacher']}` where "
            f"escalated): accuracy {_pct(c['accuracy'])} with {_pct(c['escalation_rate'])} "
            f"of frames escalated; teacher alone {_pct(c['teacher_accuracy'])}.",
        ]
    if report["drift"]:
        names = [r["name"] for r in rows]
        lines += [
            "",
            "## Drift conditions (never trained on; all images)",
            "",
            "| condition | images | "
            + " | ".join(f"{n} acc. / escalation" for n in names)
            + " | cascade acc. |",
            "|---|---|" + "---|" * len(names) + "---|",
        ]
        base = {r["name"]: r for r in rows}
        lines.append(
            "| none (test split) | "
            + f"{report['images']} | "
            + " | ".join(
                f"{_pct(base[n]['accuracy'])} / {_pct(base[n]['escalation_rate'])}" for n in names
            )
            + f" | {_pct(report.get('cascade', {}).get('accuracy', float('nan')))} |"
        )
        for cond, e in report["drift"].items():
            lines.append(
                f"| {cond} | {e['images']} | "
                + " | ".join(
                    f"{_pct(e['packages'][n]['accuracy'])} / "
                    f"{_pct(e['packages'][n]['escalation_rate'])}"
                    for n in names
                )
                + f" | {_pct(e.get('cascade_accuracy', float('nan')))} |"
            )
    lines += ["", "## Per class", ""]
    for r in rows:
        lines.append(
            f"**{r['name']}**: "
            + ", ".join(
                f"{lab} P {_pct(v['precision'])} R {_pct(v['recall'])} (n={v['support']})"
                for lab, v in r["per_class"].items()
            )
        )
        lines.append("")
    lines += [
        "![evaluation plot](plot.png)",
        "",
        "*Escalation*: share of frames the package would not decide itself (top-1 "
        "probability below its per-class threshold from the manifest); the edge sends "
        "those to the cloud teacher. *Confident acc.*: accuracy on the other frames. "
        "*Agreement*: share of frames with the same top-1 class as the first package.",
        "",
    ]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """NaN (no data, e.g. precision of a class never predicted) becomes JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_report(packages: list[Path], data: Path, out: Path) -> dict[str, Any]:
    """Evaluate and write ``report.json``, ``report.md`` and ``plot.png`` into ``out``."""
    report = evaluate_packages(packages, data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_finite(report), indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    draw_plot(report, out / "plot.png")
    logger.info("report written to %s", out)
    return report
