"""The drift reference of a model package: how its top-1 score is distributed on held-out data.

The cloud's drift audit compares the live distribution of the edge's confidence
against :class:`pipeline.modelpkg.ScoreReference` in the manifest (population
stability index). Two kinds of bins:

* classifiers: fixed edges on the top-1 probability, finer towards 1.0 where most
  of the mass of a good model sits (:data:`CLASSIFY_EDGES`);
* anomaly models: quantiles of the anomaly score of normal validation windows, so
  every bin holds about the same share; a live score outside the edges belongs to
  the first or last bin.

:func:`compute_reference` measures it for an existing package with onnxruntime
(``edgeloop models reference``); export and quantize call the histogram helpers on
the scores they already have. Needs numpy and onnxruntime, never torch.
"""

from __future__ import annotations

__all__ = [
    "ANOMALY_BINS",
    "CLASSIFY_EDGES",
    "SCORE_DECIMALS",
    "ScoreReferenceError",
    "anomaly_reference",
    "as_probs",
    "classify_reference",
    "compute_reference",
    "histogram_reference",
    "reference",
    "write_reference",
]

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import EdgeloopError
from pipeline.modelpkg import ModelManifest, ModelPackage, ScoreReference, load_package

logger = logging.getLogger(__name__)

#: Bin edges of a classifier's top-1 probability: 19 bins, finer towards 1.0 where most of
#: the mass sits. No edge below 1 is a multiple of 1/255 (the output step of an INT8
#: softmax), so float rounding cannot move a quantized score across an edge.
CLASSIFY_EDGES: tuple[float, ...] = (
    0.0,
    0.35,
    0.45,
    0.55,
    0.65,
    0.75,
    0.85,
    0.9,
    0.93,
    0.95,
    0.97,
    0.98,
    0.99,
    0.995,
    0.998,
    0.999,
    0.9995,
    0.9999,
    0.99999,
    1.0,
)
#: Decimals of the scores results carry (the edge rounds them); the reference does the same.
SCORE_DECIMALS = 5
#: Quantile bins of an anomaly model's score on normal validation windows.
ANOMALY_BINS = 20


class ScoreReferenceError(EdgeloopError):
    """The score reference of a package cannot be measured or stored."""


def as_probs(outputs: np.ndarray, output_kind: str) -> np.ndarray:
    """Class probabilities (N, classes) float64 from a classifier's raw outputs.

    ``logits`` go through a (numerically stable) softmax; ``probs`` are clipped to
    [0, 1] and renormalised to sum to 1 (INT8 outputs are multiples of 1/255 and do
    not quite sum to 1). This is exactly how the edge runtime reads them, so the
    reference and the scores in results are the same quantity.
    """
    x: np.ndarray = np.asarray(outputs, np.float64)
    if output_kind == "logits":
        e: np.ndarray = np.exp(x - x.max(axis=1, keepdims=True))
        soft: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return soft
    x = np.clip(x, 0.0, 1.0)
    total = x.sum(axis=1, keepdims=True)
    uniform = np.full_like(x, 1.0 / max(1, x.shape[1]))
    out: np.ndarray = np.where(total > 0, x / np.where(total > 0, total, 1.0), uniform)
    return out


def histogram_reference(
    scores: np.ndarray, edges: Sequence[float], *, source: str
) -> ScoreReference:
    """The share of ``scores`` in each bin of ``edges``.

    Scores outside the edges count in the first or last bin (the reference's outer
    bins are open), non-finite scores are dropped.

    Raises:
        ScoreReferenceError: no finite score.
    """
    s = np.asarray(scores, np.float64).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise ScoreReferenceError(
            "no finite scores to measure a reference on",
            where=source or None,
            hint="check the held-out data",
        )
    e = np.asarray(edges, np.float64)
    counts, _ = np.histogram(np.clip(s, e[0], e[-1]), bins=e)
    fractions = counts / counts.sum()
    return ScoreReference(
        edges=tuple(float(x) for x in e),
        fractions=tuple(round(float(f), 6) for f in fractions),
        samples=int(s.size),
        source=source[:256],
    )


def classify_reference(probs: np.ndarray, *, source: str) -> ScoreReference:
    """Reference of a classifier: histogram of the top-1 probability on :data:`CLASSIFY_EDGES`.

    The top-1 probability is rounded to :data:`SCORE_DECIMALS` first, as results carry
    it, so the reference and the live scores are binned alike.
    """
    top1 = np.round(np.asarray(probs, np.float64).max(axis=1), SCORE_DECIMALS)
    return histogram_reference(top1, CLASSIFY_EDGES, source=source)


def anomaly_reference(
    scores: np.ndarray, *, bins: int = ANOMALY_BINS, source: str
) -> ScoreReference:
    """Reference of an anomaly model: ``bins`` quantile bins of normal-window scores.

    The first edge is 0 (scores are reconstruction errors, never negative) and the
    last the highest score seen; equal quantiles (many tied scores) are merged.
    """
    s = np.asarray(scores, np.float64).ravel()
    s = s[np.isfinite(s)]
    if s.size < 2:
        raise ScoreReferenceError(
            f"{s.size} finite scores, too few for quantile bins",
            where=source or None,
            hint="record more normal validation data",
        )
    inner = np.quantile(s, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(np.concatenate([[min(0.0, float(s.min()))], inner, [float(s.max())]]))
    if edges.size < 3:  # all scores equal: one bin either side of the value
        v = float(edges[-1])
        edges = np.array([v - 1.0, v, v + 1.0])
    return histogram_reference(s, [round(float(x), 9) for x in edges], source=source)


def _classify_probs(package: ModelPackage, data: Path, split: str) -> np.ndarray:
    from cloud_stream.training.calibrate import session
    from cloud_stream.training.imagefolder import load_split, require_split, scan, to_input
    from pipeline.modelpkg import ImageInput

    m = package.manifest
    assert isinstance(m.input, ImageInput)
    dataset = scan(data)
    mapping = {i: m.labels.index(lab) for i, lab in enumerate(dataset.labels) if lab in m.labels}
    items = [(p, mapping[y]) for p, y in require_split(dataset, split) if y in mapping]
    if not items:
        raise ScoreReferenceError(
            f"no {split} images with the model's labels",
            where=str(data),
            hint=f"the model knows {list(m.labels)}",
        )
    xs, _ = load_split(items, m.input, what=f"{split} images")
    sess = session(package.onnx_path, threads=0)
    x = to_input(xs, m.input)
    outs = [sess.run([m.output], {m.input.name: x[i : i + 64]})[0] for i in range(0, len(x), 64)]
    return as_probs(np.concatenate(outs), m.output_kind)


def _anomaly_scores(package: ModelPackage, data: Path, split: str) -> np.ndarray:
    from cloud_stream.training.anomaly_data import ChannelSpec, load_split, windows
    from cloud_stream.training.anomaly_model import Scorer
    from pipeline.modelpkg import SensorInput

    m = package.manifest
    assert isinstance(m.input, SensorInput)
    specs = tuple(
        ChannelSpec(name=c.name, mean=c.mean, std=c.std, min=c.min, max=c.max, unit=c.unit)
        for c in m.input.channels
    )
    found = load_split(data, split)
    assert found is not None
    if found.channels != tuple(s.name for s in specs):
        raise ScoreReferenceError(
            f"{split}.csv has channels {list(found.channels)}, the model {[s.name for s in specs]}",
            where=str(found.path),
            hint="use data with the model's channels in the same order",
        )
    wins, labels, _ = windows(found, specs, window=m.input.window, hop=m.input.hop)
    normal = wins[(labels == "normal") & np.isfinite(wins).all(axis=(1, 2))]
    if normal.shape[0] < 2:
        raise ScoreReferenceError(
            f"too few normal windows in {split}.csv ({normal.shape[0]})",
            where=str(found.path),
            hint="record more normal operation",
        )
    return Scorer(str(package.onnx_path), input_name=m.input.name)(normal)


def compute_reference(package: ModelPackage, data: Path, *, split: str = "val") -> ScoreReference:
    """Measure a package's score reference on ``split`` of ``data`` with onnxruntime.

    Args:
        package: A loaded (checked) package, classify or anomaly.
        data: An image-folder dataset (classify) or a CSV sensor dataset (anomaly).
        split: Which held-out split to use; never the training split of the model.

    Raises:
        ScoreReferenceError: too few usable samples.
        TrainingDataError, AnomalyDataError: the data cannot be read.
    """
    m = package.manifest
    source = f"{split} split of {Path(data).name}, {m.name} {m.version}"
    if m.task == "classify":
        return classify_reference(_classify_probs(package, Path(data), split), source=source)
    return anomaly_reference(_anomaly_scores(package, Path(data), split), source=source)


def write_reference(package_dir: Path, ref: ScoreReference) -> ModelManifest:
    """Set ``score_reference`` in a package's ``manifest.json``; other fields stay as written.

    The manifest's ``sha256`` is of the ONNX file, so the package stays valid. The new
    manifest is validated before it atomically replaces the old one.
    """
    path = Path(package_dir) / "manifest.json"
    raw = json.loads(path.read_text())
    raw["score_reference"] = ref.model_dump(mode="json")
    checked = ModelManifest.model_validate(raw, strict=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.json.")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(raw, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return checked


def reference(package: Path, data: Path, *, split: str = "val") -> int:
    """``edgeloop models reference``: measure and store a package's score reference."""
    pkg = load_package(package)
    ref = compute_reference(pkg, data, split=split)
    write_reference(pkg.path, ref)
    load_package(pkg.path)  # the rewritten package must still load
    shares = ", ".join(
        f"{lo:g}-{hi:g}: {f:.3f}"
        for lo, hi, f in zip(ref.edges, ref.edges[1:], ref.fractions, strict=False)
        if f >= 0.01
    )
    print(f"{pkg.path}: score reference of {ref.samples} {split} samples ({shares})")
    return 0
