"""``edgeloop models train|export|quantize|evaluate|reference``.

Every step works on plain files: an image-folder dataset or CSV sensor data in,
a model package (ONNX + manifest) out. ``--task`` picks the implementation:
``classifier`` and ``teacher`` (:mod:`cloud_stream.training.vision`) or
``anomaly`` (:mod:`cloud_stream.training.anomaly`).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from types import ModuleType

TASKS = {
    "classifier": "cloud_stream.training.vision",
    "teacher": "cloud_stream.training.vision",
    "anomaly": "cloud_stream.training.anomaly",
}


def _impl(task: str) -> ModuleType:
    return importlib.import_module(TASKS[task])


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True)

    train = sub.add_parser("train", help="train a model on a dataset (needs edgeloop[train])")
    train.add_argument("--task", choices=sorted(TASKS), required=True)
    train.add_argument("--data", type=Path, required=True, help="image folder or CSV folder")
    train.add_argument("--out", type=Path, required=True, help="run folder to write")
    train.add_argument("--epochs", type=int, default=None, help="default: the task's own")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(
        func=lambda a: _impl(a.task).train(a.data, a.out, task=a.task, epochs=a.epochs, seed=a.seed)
    )

    export = sub.add_parser("export", help="export a trained run to an FP32 ONNX model package")
    export.add_argument("--run", type=Path, required=True, help="run folder from 'train'")
    export.add_argument("--out", type=Path, required=True, help="package folder to write")
    export.add_argument("--version", default="1.0.0", help="package version")
    export.set_defaults(
        func=lambda a: _impl(_task_of(a.run)).export(a.run, a.out, version=a.version)
    )

    quant = sub.add_parser("quantize", help="INT8 static quantization of an FP32 package")
    quant.add_argument("--package", type=Path, required=True, help="FP32 package folder")
    quant.add_argument("--data", type=Path, required=True, help="dataset for calibration")
    quant.add_argument("--out", type=Path, required=True, help="INT8 package folder to write")
    quant.add_argument(
        "--method",
        default="auto",
        choices=["auto", "minmax", "entropy", "percentile"],
        help="calibration method; auto measures all and keeps the most accurate",
    )
    quant.set_defaults(
        func=lambda a: _impl(_task_of(a.package)).quantize(
            a.package, a.data, a.out, method=a.method
        )
    )

    ev = sub.add_parser("evaluate", help="evaluation report (JSON + markdown + plot)")
    ev.add_argument(
        "--package",
        type=Path,
        action="append",
        required=True,
        help="package folder; repeat to compare (e.g. FP32 and INT8)",
    )
    ev.add_argument("--data", type=Path, required=True, help="dataset (its test split is used)")
    ev.add_argument("--out", type=Path, required=True, help="report folder to write")
    ev.set_defaults(func=_evaluate)

    ref = sub.add_parser(
        "reference",
        help="measure a package's top-1 score distribution on held-out data (the cloud's "
        "drift reference) and store it in its manifest.json",
    )
    ref.add_argument("package", type=Path, help="package folder (its manifest is rewritten)")
    ref.add_argument(
        "--data", type=Path, required=True, help="image folder (classify) or CSV folder (anomaly)"
    )
    ref.add_argument(
        "--split", default="val", choices=["val", "test", "train"], help="held-out split to use"
    )
    ref.set_defaults(func=_reference)


def _task_of(path: Path) -> str:
    """The task recorded in a run folder (run.json) or a package manifest."""
    for name in ("run.json", "manifest.json"):
        f = path / name
        if f.is_file():
            meta = json.loads(f.read_text())
            task = str(meta.get("train_task") or meta.get("task"))
            return {"classify": "classifier", "anomaly": "anomaly"}.get(task, task)
    raise SystemExit(f"{path}: neither run.json nor manifest.json found")


def _reference(args: argparse.Namespace) -> int:
    from cloud_stream.training.score_reference import reference

    return reference(args.package, args.data, split=args.split)


def _evaluate(args: argparse.Namespace) -> int:
    impl = _impl(_task_of(args.package[0]))
    return int(impl.evaluate(args.package, args.data, args.out) or 0)
