"""``edgeloop models ... --task anomaly``: the sensor-window anomaly scorer.

The model (:mod:`cloud_stream.training.anomaly_graph`) takes a normalised window
``(1, C, window)`` and computes spectral band energies and per-channel statistics
inside the ONNX graph, then scores the window by the reconstruction error of a
small autoencoder trained on normal operation only. ``raise_at`` is calibrated on
normal validation windows. Steps, each on plain files:

* :func:`train`: CSV dataset -> run folder (``run.json``, ``weights.npz``, ``model.onnx``);
* :func:`export`: run folder -> FP32 model package;
* :func:`quantize`: FP32 package -> INT8 package (front-end kept FP32 if that is
  measured to be more faithful);
* :func:`evaluate`: packages + ``test.csv`` -> ``report.json``, ``report.md``, ``report.png``.

torch is imported only by :func:`train`.
"""

from __future__ import annotations

__all__ = ["evaluate", "export", "quantize", "train"]

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.anomaly_data import (
    AnomalyDataError,
    ChannelSpec,
    channel_specs,
    load_split,
    windows,
)
from cloud_stream.training.anomaly_graph import OPSET, FrontEnd, build_model
from cloud_stream.training.anomaly_model import Scorer, auc, percentile_thresholds
from cloud_stream.training.score_reference import anomaly_reference

logger = logging.getLogger(__name__)

WINDOW = 1024
FRAME = 256
TRAIN_HOP = 256
EVAL_HOP = 512
HIDDEN = (32, 8, 32)
DEFAULT_EPOCHS = 120
MACHINE_FAULTS = ("bearing_wear", "imbalance", "overheating")


def _normal_windows(wins: np.ndarray, labels: np.ndarray) -> np.ndarray:
    keep = (labels == "normal") & np.isfinite(wins).all(axis=(1, 2))
    return np.asarray(wins[keep])


def _fit_autoencoder(
    train_z: np.ndarray, val_z: np.ndarray, *, epochs: int, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[float]]:
    """Train the dense autoencoder on standardised features; keep the best-on-val weights."""
    import torch

    torch.manual_seed(seed)
    # The network is tiny: more threads only add overhead (and the machine is shared).
    torch.set_num_threads(1)
    dims = (train_z.shape[1], *HIDDEN, train_z.shape[1])
    mods: list[torch.nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    xt = torch.from_numpy(train_z.astype(np.float32))
    xv = torch.from_numpy(val_z.astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = float("inf"), net.state_dict(), []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(xt.shape[0], generator=gen)
        for start in range(0, xt.shape[0], 64):
            idx = order[start : start + 64]
            batch = xt[idx]
            loss = torch.mean((net(batch + 0.05 * torch.randn_like(batch)) - batch) ** 2)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            val = float(torch.mean((net(xv) - xv) ** 2))
        history.append(val)
        if val < best:
            best = val
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        if epoch % 20 == 0 or epoch == epochs - 1:
            logger.info("epoch %d/%d: val reconstruction %.4f", epoch + 1, epochs, val)
    net.load_state_dict(best_state)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]
    return layers, history


def fault_aucs(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUC of each machine fault against normal windows, and ``auc`` over all of them."""
    normal = scores[labels == "normal"]
    out: dict[str, float] = {}
    faults = [f for f in MACHINE_FAULTS if (labels == f).any()]
    for f in faults:
        out[f"auc_{f}"] = auc(normal, scores[labels == f])
    if faults:
        out["auc"] = auc(normal, scores[np.isin(labels, faults)])
    return out


def train(data: Path, out: Path, *, task: str, epochs: int | None, seed: int) -> int:
    """Train the anomaly model on ``data/train.csv`` (normal windows), calibrate on ``val.csv``.

    Returns:
        0 on success.

    Raises:
        AnomalyDataError: the dataset is missing or malformed.
    """
    t0 = time.perf_counter()
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    train_split = load_split(data, "train")
    val_split = load_split(data, "val")
    assert train_split is not None
    assert val_split is not None
    if val_split.channels != train_split.channels:
        raise AnomalyDataError(
            f"val.csv has channels {val_split.channels}, train.csv {train_split.channels}",
            where=str(val_split.path),
            hint="all splits need the same channel columns in the same order",
        )
    specs = channel_specs(data, train_split)
    fe = FrontEnd.default(len(specs), WINDOW, FRAME)
    tw = _normal_windows(*windows(train_split, specs, window=WINDOW, hop=TRAIN_HOP)[:2])
    vw = _normal_windows(*windows(val_split, specs, window=WINDOW, hop=EVAL_HOP)[:2])
    if tw.shape[0] < 32 or vw.shape[0] < 8:
        raise AnomalyDataError(
            f"too little normal data: {tw.shape[0]} train and {vw.shape[0]} val windows",
            where=str(data),
            hint=f"record at least a minute of normal operation per split "
            f"(windows of {WINDOW} samples)",
        )
    features = Scorer(build_model(fe))
    tf, vf = features(tw), features(vw)
    feat_mean = tf.mean(axis=0)
    feat_std = np.maximum(tf.std(axis=0), 0.05)  # a constant feature must not blow up
    layers, history = _fit_autoencoder(
        (tf - feat_mean) / feat_std, (vf - feat_mean) / feat_std, epochs=epochs, seed=seed
    )
    model = build_model(fe, feat_mean=feat_mean, feat_std=feat_std, layers=layers)
    scorer = Scorer(model)
    val_scores = scorer(vw)
    thresholds = percentile_thresholds(val_scores)
    metrics: dict[str, float] = {
        "val_score_p50": float(np.median(val_scores)),
        "val_score_p99": float(np.percentile(val_scores, 99)),
        "val_windows": float(vw.shape[0]),
        "train_windows": float(tw.shape[0]),
    }
    test = load_split(data, "test", required=False)
    if test is not None:
        ew, el, _ = windows(test, specs, window=WINDOW, hop=EVAL_HOP)
        finite = np.isfinite(ew).all(axis=(1, 2))
        metrics.update(fault_aucs(scorer(ew[finite]), el[finite]))
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"feat_mean": feat_mean, "feat_std": feat_std}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    np.savez(out / "weights.npz", **arrays)  # type: ignore[arg-type]
    (out / "model.onnx").write_bytes(model.SerializeToString())
    run = {
        "train_task": "anomaly",
        "task": "anomaly",
        "data": _describe(data),
        "seed": seed,
        "epochs": epochs,
        "rate_hz": train_split.rate_hz,
        "window": WINDOW,
        "hop": EVAL_HOP,
        "frame": FRAME,
        "band_edges": list(fe.band_edges),
        "layers": len(layers),
        "channels": [vars(s) for s in specs],
        "thresholds": thresholds,
        "score_reference": anomaly_reference(
            val_scores, source=f"{vw.shape[0]} normal val windows, FP32"
        ).model_dump(mode="json"),
        "metrics": metrics,
        "val_history": history,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print(
        f"trained anomaly model on {tw.shape[0]} normal windows in {run['seconds']} s: "
        f"raise_at {thresholds['raise_at']:.4g}, clear_at {thresholds['clear_at']:.4g}"
        + (f", test AUC {metrics['auc']:.4f}" if "auc" in metrics else "")
        + f" -> {out}"
    )
    return 0


def _describe(data: Path) -> str:
    """What the data was, for ``trained_on``: the simulator and seed, or the folder name."""
    f = data / "dataset.json"
    try:
        meta = json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, json.JSONDecodeError):
        meta = {}
    if isinstance(meta, dict) and "source" in meta:
        return (
            f"{meta['source']} seed {meta.get('seed')}, {meta.get('seconds_per_split')} s per "
            f"split at {meta.get('rate_hz')} Hz (edgeloop edge simulate machine)"
        )
    return f"CSV dataset {data.name}"


def _read_run(run: Path) -> dict[str, Any]:
    f = run / "run.json"
    if not f.is_file():
        raise AnomalyDataError(
            "no run.json in the run folder",
            where=str(run),
            hint="pass the --out folder of 'edgeloop models train --task anomaly'",
        )
    meta: dict[str, Any] = json.loads(f.read_text())
    return meta


def manifest_fields(
    meta: dict[str, Any], *, name: str, version: str, precision: str
) -> dict[str, Any]:
    """Manifest fields (all but file/sha256/bytes) of a package made from a run."""
    chans = [ChannelSpec(**c) for c in meta["channels"]]
    return {
        "name": name,
        "version": version,
        "task": "anomaly",
        "precision": precision,
        "opset": OPSET,
        "input": {
            "kind": "sensor",
            "name": "input",
            "rate_hz": meta["rate_hz"],
            "window": meta["window"],
            "hop": meta["hop"],
            "channels": [
                {
                    "name": c.name,
                    "mean": c.mean,
                    "std": c.std,
                    "min": c.min,
                    "max": c.max,
                    "unit": c.unit,
                }
                for c in chans
            ],
        },
        "output": "output",
        "output_kind": "score",
        "labels": ["normal", "anomaly"],
        "thresholds": meta["thresholds"],
        # Runs trained before the reference existed have none: 'edgeloop models reference'.
        "score_reference": meta.get("score_reference"),
        "metrics": meta["metrics"],
        "trained_on": str(meta["data"])[-256:],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "description": "Autoencoder anomaly score of a sensor window. Features are computed in "
        f"the graph: log band energies ({len(meta['band_edges']) - 1} bands, {meta['frame']}-point "
        "DFT frames) and mean/log std/log kurtosis/log crest per channel. Score = mean squared "
        "reconstruction error of standardised features; trained on normal data only.",
    }


def export(run: Path, out: Path, *, version: str) -> int:
    """Write the FP32 package (``machine-anomaly-fp32``) of a trained run."""
    from pipeline.modelpkg import write_package

    meta = _read_run(run)
    fields = manifest_fields(meta, name="machine-anomaly-fp32", version=version, precision="fp32")
    write_package(out, run / "model.onnx", fields)
    print(f"exported {out} ({(out / 'model.onnx').stat().st_size} bytes)")
    return 0


def quantize(package: Path, data: Path, out: Path, *, method: str) -> int:
    """INT8 package from an FP32 one; see :mod:`cloud_stream.training.anomaly_quant`."""
    from cloud_stream.training.anomaly_quant import quantize_package

    return quantize_package(package, data, out, method=method)


def evaluate(packages: list[Path], data: Path, out: Path) -> int:
    """Report on ``data/test.csv``; see :mod:`cloud_stream.training.anomaly_eval`."""
    from cloud_stream.training.anomaly_eval import evaluate_packages

    return evaluate_packages(packages, data, out)
