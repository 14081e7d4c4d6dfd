"""INT8 quantization of the anomaly model, chosen by measurement.

Three scopes are tried: ``full`` (every node), ``dense`` (the autoencoder only:
the DFT front-end and the score stay FP32, because squared spectra and their logs
span many decades, which 8 bits cannot hold) and ``inner`` (as ``dense``, but the
autoencoder's first layer also stays FP32: its input is clipped to the normal
calibration range by INT8, which flattens exactly the anomalous windows). For
each scope and calibration method the INT8 scores are compared with FP32 on
validation windows (and test windows if ``test.csv`` exists): the alarm-decision
agreement decides, then the median relative score error; labels are not used,
the fault AUC is only reported. ``raise_at`` and
``clear_at`` are recalibrated on the INT8 model's own validation scores.
"""

from __future__ import annotations

__all__ = ["quantize_package"]

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.anomaly_data import ChannelSpec, load_split, windows
from cloud_stream.training.anomaly_graph import node_scope
from cloud_stream.training.anomaly_model import Scorer, percentile_thresholds
from cloud_stream.training.quantize import CALIBRATION_METHODS, CalibrationMethod, quantize_int8
from cloud_stream.training.score_reference import anomaly_reference
from pipeline.errors import EdgeloopError

logger = logging.getLogger(__name__)

SCOPES = ("inner", "dense", "full")
CALIBRATION_WINDOWS = 256
_SCOPE_TEXT = {
    "inner": "autoencoder layers 2.. in INT8; front-end, first layer and score FP32",
    "dense": "autoencoder in INT8; front-end and score FP32",
    "full": "all nodes INT8",
}


class AnomalyQuantizeError(EdgeloopError):
    """The FP32 package cannot be quantized."""


def _excluded(onnx_path: Path) -> dict[str, list[str]]:
    """Node names kept FP32 per scope (``full`` quantizes everything)."""
    import onnx

    nodes = onnx.load(str(onnx_path)).graph.node
    outside = [n.name for n in nodes if node_scope(n.name) != "ae"]
    gemms = [n.name for n in nodes if n.op_type == "Gemm"]
    # inner: also the standardisation and the first layer, so the autoencoder's input
    # (out of the calibration range exactly when a window is anomalous) is never clipped.
    first = [n.name for n in nodes if node_scope(n.name) == "ae" and n.op_type in ("Add", "Mul")]
    return {"inner": [*outside, *first, *gemms[:1]], "dense": outside, "full": []}


def _specs(manifest: Any) -> tuple[ChannelSpec, ...]:
    return tuple(
        ChannelSpec(name=c.name, mean=c.mean, std=c.std, min=c.min, max=c.max, unit=c.unit)
        for c in manifest.input.channels
    )


def _agreement(
    fp_scores: np.ndarray, q_scores: np.ndarray, fp_raise: float, q_raise: float
) -> float:
    return float(np.mean((fp_scores >= fp_raise) == (q_scores >= q_raise)))


def _windows(
    data: Path, specs: tuple[ChannelSpec, ...], window: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Calibration windows (train), normal val windows, finite test windows and labels."""
    train = load_split(data, "train")
    val = load_split(data, "val")
    assert train is not None
    assert val is not None
    tw, tl, _ = windows(train, specs, window=window, hop=hop)
    ok = (tl == "normal") & np.isfinite(tw).all(axis=(1, 2))
    pick = np.random.default_rng(0).permutation(int(ok.sum()))[:CALIBRATION_WINDOWS]
    calib = tw[ok][pick]
    # Equal batches of 16: the entropy and percentile calibrators stack them.
    calib = calib[: max(16, calib.shape[0] // 16 * 16)]
    vw, vl, _ = windows(val, specs, window=window, hop=hop)
    vw = vw[(vl == "normal") & np.isfinite(vw).all(axis=(1, 2))]
    test = load_split(data, "test", required=False)
    if test is None:
        return calib, vw, np.zeros((0, *vw.shape[1:]), np.float32), np.zeros(0, dtype=str)
    ew, el, _ = windows(test, specs, window=window, hop=hop)
    finite = np.isfinite(ew).all(axis=(1, 2))
    return calib, vw, ew[finite], el[finite]


def quantize_package(package: Path, data: Path, out: Path, *, method: str) -> int:
    """Write the INT8 package ``machine-anomaly-int8`` (or ``<name>-int8``) to ``out``.

    Args:
        package: FP32 package folder.
        data: Dataset folder; ``train.csv`` calibrates, ``val.csv`` (and ``test.csv``)
            measure.
        out: INT8 package folder to write.
        method: ``auto`` (try all calibration methods) or one of them.

    Returns:
        0 on success.
    """
    from cloud_stream.training.anomaly import fault_aucs
    from pipeline.modelpkg import load_package, write_package

    pkg = load_package(package)
    m = pkg.manifest
    if m.task != "anomaly" or m.input.kind != "sensor":
        raise AnomalyQuantizeError(
            f"package is a {m.task} model", where=str(package), hint="pass an anomaly package"
        )
    calib, vw, ew, el = _windows(data, _specs(m), m.input.window, m.input.hop)
    fp = Scorer(str(pkg.onnx_path))
    fp_val, fp_test = fp(vw), fp(ew)
    fp_raise = float(getattr(m.thresholds, "raise_at", 0.0))
    methods: tuple[CalibrationMethod, ...] = (
        CALIBRATION_METHODS if method == "auto" else (method,)  # type: ignore[assignment]
    )
    excluded = _excluded(pkg.onnx_path)
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for scope in SCOPES:
            for meth in methods:
                path = Path(tmp) / f"{scope}-{meth}.onnx"
                quantize_int8(
                    pkg.onnx_path,
                    path,
                    input_name=m.input.name,
                    calibration=(calib[i : i + 16] for i in range(0, calib.shape[0], 16)),
                    method=meth,
                    exclude_nodes=excluded[scope],
                )
                q = Scorer(str(path))
                q_val, q_test = q(vw), q(ew)
                thr = percentile_thresholds(q_val)
                both_fp = np.concatenate([fp_val, fp_test])
                both_q = np.concatenate([q_val, q_test])
                rel = np.abs(both_q - both_fp) / np.maximum(np.abs(both_fp), 1e-6)
                trial: dict[str, Any] = {
                    "scope": scope,
                    "method": meth,
                    "path": path,
                    "thresholds": thr,
                    "val_scores": q_val,
                    "agreement": _agreement(both_fp, both_q, fp_raise, float(thr["raise_at"])),  # type: ignore[arg-type]
                    "median_rel_err": float(np.median(rel)),
                    "aucs": fault_aucs(q_test, el) if el.size else {},
                    "bytes": path.stat().st_size,
                }
                trials.append(trial)
                logger.info(
                    "int8 %s/%s: decision agreement %.4f, median relative score error %.4f, auc %s",
                    scope,
                    meth,
                    trial["agreement"],
                    trial["median_rel_err"],
                    trial["aucs"].get("auc"),
                )
        # Chosen by fidelity to FP32 only (no labels), so the test AUC stays an honest figure.
        best = max(trials, key=lambda t: (t["agreement"], -t["median_rel_err"]))
        fields = json.loads(m.model_dump_json())
        for key in ("file", "sha256", "bytes"):
            fields.pop(key)
        name = m.name.removesuffix("-fp32") + "-int8"
        fields.update(name=name, precision="int8", thresholds=best["thresholds"])
        fields["score_reference"] = anomaly_reference(
            best["val_scores"],
            source=f"{vw.shape[0]} normal val windows, INT8 {best['scope']}/{best['method']}",
        ).model_dump(mode="json")
        fields["metrics"] = {
            **{k: v for k, v in m.metrics.items() if not k.startswith("auc")},
            **best["aucs"],
            "fp32_decision_agreement": best["agreement"],
            "fp32_median_rel_score_err": best["median_rel_err"],
        }
        table = "; ".join(
            f"{t['scope']}/{t['method']}: agree {t['agreement']:.4f}, "
            f"auc {t['aucs'].get('auc', float('nan')):.4f}"
            for t in trials
        )
        fields["description"] = (
            f"{m.description} INT8 (QDQ) scope '{best['scope']}' "
            f"({_SCOPE_TEXT[best['scope']]}), "
            f"calibration '{best['method']}', chosen by measurement: {table}."
        )[:2048]
        write_package(out, best["path"], fields)
    print(
        f"quantized {package} -> {out}: scope {best['scope']}, method {best['method']}, "
        f"decision agreement with FP32 {best['agreement']:.4f}"
        + (f", AUC {best['aucs']['auc']:.4f}" if "auc" in best["aucs"] else "")
    )
    return 0
