"""``edgeloop models train|export|quantize|evaluate`` for image classifiers.

``--task classifier`` trains the small edge CNN, ``--task teacher`` the larger FP32
cloud model; both take any image-folder dataset (see :mod:`.imagefolder`). torch is
needed only by ``train`` and ``export``; ``quantize`` and ``evaluate`` work on
packages with onnxruntime alone.
"""

from __future__ import annotations

__all__ = ["DEFAULT_EPOCHS", "evaluate", "export", "input_spec", "quantize", "train"]

import json
import logging
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cloud_stream.training.calibrate import calibrate_thresholds, predict, session
from cloud_stream.training.imagefolder import (
    ImageDataset,
    TrainingDataError,
    load_split,
    require_split,
    scan,
    to_input,
)
from cloud_stream.training.input_stats import measure_input_stats
from cloud_stream.training.quantize import CALIBRATION_METHODS, CalibrationMethod, quantize_int8
from cloud_stream.training.score_reference import classify_reference
from pipeline.modelpkg import ImageInput, load_package, write_package

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = {"classifier": 20, "teacher": 40}
#: Peak learning rate of a fresh run, and of a run that continues earlier weights.
LR_FRESH, LR_CONTINUE = 3e-3, 1e-3
OPSET = 17
RUN_FILE = "run.json"
WEIGHTS = "model.pt"
CALIBRATION_IMAGES = 256


def input_spec(dataset: ImageDataset) -> ImageInput:
    """The model input for a dataset: 96x96 RGB.

    Frames of the conveyor simulator are cropped to the central square (80 % of the
    frame height) where the part lies; other datasets are resized whole.
    """
    simulated = str(dataset.meta.get("generator", "")).startswith("conveyor-sim")
    return ImageInput(
        width=96,
        height=96,
        color="rgb",
        crop=0.8 if simulated else 1.0,
        mean=(0.45, 0.45, 0.45),
        std=(0.25, 0.25, 0.25),
    )


def _package_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(out).resolve().name).strip("-._") or "model"
    return name[:64]


def train(data: Path, out: Path, *, task: str, epochs: int | None, seed: int) -> int:
    """Train ``task`` (classifier or teacher) on ``data``; write ``out/run.json`` and weights."""
    from cloud_stream.training.nets import ARCHS
    from cloud_stream.training.torchtrain import fit

    if task not in ARCHS:
        raise TrainingDataError(
            f"unknown vision task {task!r}", where="--task", hint=f"one of {sorted(ARCHS)}"
        )
    dataset = scan(data)
    spec = input_spec(dataset)
    train_xy = load_split(require_split(dataset, "train"), spec, what="train images")
    val_xy = load_split(dataset.split("val"), spec, what="val images")
    out.mkdir(parents=True, exist_ok=True)
    n_epochs = epochs if epochs is not None else DEFAULT_EPOCHS[task]
    earlier = _earlier_run(out, task, spec, dataset.labels)
    init = None
    if earlier is not None:
        init = out / "init.pt"
        (out / WEIGHTS).replace(init)
        logger.info(
            "continuing %s from %d earlier epochs in %s", task, earlier["metrics"]["epochs"], out
        )
    result = fit(
        ARCHS[task],
        spec,
        train_xy,
        val_xy,
        classes=len(dataset.labels),
        epochs=n_epochs,
        seed=seed,
        weights=out / WEIGHTS,
        lr=LR_FRESH if init is None else LR_CONTINUE,
        init=init,
        # The edge classifier always trains on the CPU, so the committed model
        # reproduces anywhere; the teacher uses CUDA when there is one.
        device="cpu" if task == "classifier" else None,
    )
    if init is not None:
        init.unlink()
    before = earlier["metrics"] if earlier else {}
    total_epochs = result.epochs + int(before.get("epochs", 0))
    run = {
        "train_task": task,
        "task": "classify",
        "labels": list(dataset.labels),
        "input": spec.model_dump(mode="json"),
        "arch": ARCHS[task].to_json(),
        "weights": WEIGHTS,
        "data": str(Path(data).resolve()),
        "dataset": {
            k: dataset.meta[k] for k in ("generator", "seed", "condition") if k in dataset.meta
        },
        "seed": seed,
        "metrics": {
            "val_accuracy": result.val_accuracy,
            "train_loss": result.train_loss,
            "best_epoch": result.best_epoch,
            "epochs": total_epochs,
            "train_seconds": round(result.seconds + float(before.get("train_seconds", 0)), 1),
            "runs": int(before.get("runs", 1 if earlier else 0)) + 1,
            "params": result.params,
            "train_images": len(train_xy[0]),
            "device": result.device,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    logger.info("trained %s: val accuracy %.4f in %.0fs", task, result.val_accuracy, result.seconds)
    return 0


def _earlier_run(
    out: Path, task: str, spec: ImageInput, labels: tuple[str, ...]
) -> dict[str, Any] | None:
    """The run already in ``out``, if training should continue from its weights.

    Training into a run folder that holds weights of the same task, input and labels
    continues from them (at a lower learning rate): ``train --epochs 14`` then
    ``train --epochs 6`` into the same folder is 20 epochs in two sittings.
    """
    if not (out / RUN_FILE).is_file() or not (out / WEIGHTS).is_file():
        return None
    meta = _read_json(out / RUN_FILE, RUN_FILE)
    same = (
        meta.get("train_task") == task
        and meta.get("input") == spec.model_dump(mode="json")
        and tuple(meta.get("labels", ())) == labels
    )
    if not same:
        raise TrainingDataError(
            "the run folder holds a different model (task, input or labels differ)",
            where=str(out),
            hint="train into a new folder, or delete this one to start over",
        )
    return meta


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingDataError(
            f"cannot read {what}: {exc}", where=str(path), hint="rerun the step that wrote it"
        ) from exc
    if not isinstance(raw, dict):
        raise TrainingDataError(f"{what} is not an object", where=str(path), hint="rewrite it")
    return raw


def _val_set(
    data: Path, spec: ImageInput, labels: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Validation images as model input, with labels mapped to the model's label order."""
    dataset = scan(data)
    items = dataset.split("val") or dataset.split("train")
    mapping = {i: labels.index(lab) for i, lab in enumerate(dataset.labels) if lab in labels}
    kept = [(p, mapping[y]) for p, y in items if y in mapping]
    if not kept:
        raise TrainingDataError(
            "no validation images with the model's labels",
            where=str(data),
            hint=f"the model knows {list(labels)}",
        )
    xs, ys = load_split(kept, spec, what="val images")
    return to_input(xs, spec), ys


def export(run: Path, out: Path, *, version: str) -> int:
    """Export a trained run to an FP32 package with thresholds calibrated on its val split."""
    from cloud_stream.training.nets import Arch
    from cloud_stream.training.torchtrain import export_onnx, load_weights

    meta = _read_json(run / RUN_FILE, RUN_FILE)
    spec = ImageInput.model_validate(meta["input"], strict=False)
    labels = tuple(str(x) for x in meta["labels"])
    net = load_weights(
        Arch.from_json(meta["arch"]),
        run / str(meta["weights"]),
        channels=spec.channels,
        classes=len(labels),
    )
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = export_onnx(net, spec, Path(tmp) / "model.onnx", opset=OPSET)
        x, y = _val_set(Path(meta["data"]), spec, labels)
        probs = predict(session(onnx_file, threads=2), x)
        thresholds, figures = calibrate_thresholds(probs, y, labels)
        metrics = {
            "val_accuracy": float((probs.argmax(1) == y).mean()),
            "params": float(meta["metrics"]["params"]),
            **figures,
        }
        task = str(meta["train_task"])
        write_package(
            out,
            onnx_file,
            {
                "name": _package_name(out),
                "version": version,
                "task": "classify",
                "precision": "fp32",
                "opset": OPSET,
                "input": spec.model_dump(mode="json"),
                "input_stats": measure_input_stats(x, spec).model_dump(mode="json"),
                "score_reference": classify_reference(
                    probs, source=f"val split, {len(x)} images, FP32 {version}"
                ).model_dump(mode="json"),
                "output": "output",
                "output_kind": "probs",
                "labels": list(labels),
                "thresholds": thresholds.model_dump(mode="json"),
                "metrics": metrics,
                "trained_on": _trained_on(meta),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "description": f"{task} CNN {meta['arch']['widths']}, FP32, softmax output",
            },
        )
    logger.info("exported %s to %s", run, out)
    return 0


def _trained_on(meta: dict[str, Any]) -> str:
    ds = meta.get("dataset") or {}
    if ds.get("generator"):
        return f"{ds['generator']} seed {ds.get('seed')} condition {ds.get('condition') or 'none'}"
    return str(meta.get("data", ""))[-256:]


def quantize(package: Path, data: Path, out: Path, *, method: str) -> int:
    """INT8 static quantization; ``auto`` measures every calibration method on val.

    The chosen method maximises top-1 agreement with the FP32 model on the val
    split (then accuracy). Figures for every method tried go into the manifest's
    metrics (``<method>_agreement``, ``<method>_accuracy``) and ``calibration.json``.
    """
    fp32 = load_package(package)
    m = fp32.manifest
    if not isinstance(m.input, ImageInput):
        raise TrainingDataError(
            "not an image model", where=str(package), hint="use --task anomaly packages elsewhere"
        )
    spec = m.input
    methods: tuple[CalibrationMethod, ...] = (
        CALIBRATION_METHODS if method == "auto" else (_method(method),)
    )
    dataset = scan(data)
    calib_items = _calibration_items(dataset)
    calib_x = to_input(load_split(calib_items, spec, what="calibration images")[0], spec)
    x, y = _val_set(data, spec, m.labels)
    ref = predict(session(fp32.onnx_path, threads=2), x)
    tried: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for calib in methods:
            name = str(calib)
            target = Path(tmp) / f"{name}.onnx"
            logger.info("quantizing with %s calibration", name)
            quantize_int8(
                fp32.onnx_path,
                target,
                input_name=spec.name,
                method=calib,
                calibration=_batches(calib_x),
            )
            probs = predict(session(target, threads=2), x)
            tried[name] = {
                "agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
                "accuracy": float((probs.argmax(1) == y).mean()),
                "mean_abs_prob_diff": float(np.abs(probs - ref).mean()),
            }
            logger.info("%s: %s", name, tried[name])
        best = max(
            tried,
            key=lambda k: (
                tried[k]["agreement"],
                tried[k]["accuracy"],
                -tried[k]["mean_abs_prob_diff"],
            ),
        )
        best_file = Path(tmp) / f"{best}.onnx"
        probs = predict(session(best_file, threads=2), x)
        thresholds, figures = calibrate_thresholds(probs, y, m.labels)
        metrics: dict[str, float] = {
            "val_accuracy": tried[best]["accuracy"],
            "val_agreement_fp32": tried[best]["agreement"],
            **figures,
        }
        for name, figs in tried.items():
            metrics[f"{name}_agreement"] = figs["agreement"]
            metrics[f"{name}_accuracy"] = figs["accuracy"]
        fields = m.model_dump(mode="json", exclude={"file", "sha256", "bytes"})
        fields.update(
            name=_package_name(out),
            precision="int8",
            thresholds=thresholds.model_dump(mode="json"),
            score_reference=classify_reference(
                probs, source=f"val split, {len(x)} images, INT8 ({best} calibration)"
            ).model_dump(mode="json"),
            metrics=metrics,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            description=f"INT8 (QDQ, per-channel, {best} calibration on "
            f"{len(calib_x)} images) of {m.name} {m.version}",
        )
        write_package(out, best_file, fields)
    (out / "calibration.json").write_text(
        json.dumps({"chosen": best, "images": len(calib_x), "methods": tried}, indent=2) + "\n"
    )
    logger.info("quantized %s with %s calibration to %s", package, best, out)
    return 0


def _batches(x: np.ndarray, size: int = 16) -> list[np.ndarray]:
    """Equal-sized batches (histogram calibrators stack them; a short last one breaks that)."""
    size = max(1, min(size, len(x)))
    return [x[i : i + size] for i in range(0, len(x) - len(x) % size, size)]


def _method(name: str) -> CalibrationMethod:
    for known in CALIBRATION_METHODS:
        if known == name:
            return known
    raise TrainingDataError(
        f"unknown calibration method {name!r}",
        where="--method",
        hint=f"one of auto, {', '.join(CALIBRATION_METHODS)}",
    )


def _calibration_items(dataset: ImageDataset) -> list[tuple[Path, int]]:
    """A deterministic, class-mixed sample of the training split."""
    items = dataset.split("train") or require_split(dataset, "val")
    rng = np.random.default_rng(1234)
    pick = rng.permutation(len(items))[:CALIBRATION_IMAGES]
    return [items[i] for i in sorted(pick)]


def evaluate(packages: list[Path], data: Path, out: Path) -> int:
    """Compare packages on the test split (and drift datasets): report.json/.md and a plot."""
    from cloud_stream.training.report import write_report

    write_report([Path(p) for p in packages], Path(data), Path(out))
    return 0
