"""The drift reference: histograms, quantile bins, the reference command, built-in packages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cloud_stream.training.score_reference import (
    CLASSIFY_EDGES,
    ScoreReferenceError,
    anomaly_reference,
    as_probs,
    classify_reference,
    compute_reference,
    histogram_reference,
)
from edge_node.sources.conveyor import export_dataset
from pipeline.cli.main import main
from pipeline.modelpkg import BUILTIN_DIR, builtin_package, load_package

BUILTIN = sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "manifest.json").is_file())


def test_histogram_counts_each_bin_and_clips_to_the_outer_ones():
    ref = histogram_reference(
        np.array([-5.0, 0.1, 0.5, 0.5, 0.9, 1.0, 7.0, np.nan]), [0.0, 0.4, 0.8, 1.0], source="t"
    )
    assert ref.fractions == pytest.approx((2 / 7, 2 / 7, 3 / 7), abs=1e-6)
    assert ref.samples == 7
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-5)


def test_histogram_without_finite_scores_is_an_error():
    with pytest.raises(ScoreReferenceError, match="no finite scores"):
        histogram_reference(np.array([np.nan]), [0.0, 0.5, 1.0], source="t")


def test_classify_reference_bins_the_rounded_top1():
    probs = np.array([[0.2, 0.8], [0.000004, 0.999996], [0.5, 0.5], [0.97, 0.03]])
    ref = classify_reference(probs, source="t")
    assert ref.edges == CLASSIFY_EDGES
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-5)
    got = dict(zip(ref.edges, ref.fractions, strict=False))
    assert got[0.75] == got[0.45] == got[0.97] == 0.25
    assert got[0.99999] == 0.25  # 0.999996 rounds to 1.0, as in the edge's results


def test_classify_edges_avoid_int8_softmax_steps():
    inner = np.array(CLASSIFY_EDGES[1:-1]) * 255
    assert np.all(np.abs(inner - np.round(inner)) > 1e-6)
    assert len(CLASSIFY_EDGES) - 1 >= 15


def test_anomaly_reference_has_equal_quantile_bins():
    scores = np.random.default_rng(0).gamma(4.0, 0.15, 4000)
    ref = anomaly_reference(scores, bins=20, source="t")
    assert len(ref.fractions) == 20
    assert ref.edges[0] == 0.0
    assert ref.edges[-1] == pytest.approx(scores.max())
    assert np.allclose(ref.fractions, 0.05, atol=0.002)


def test_anomaly_reference_merges_tied_quantiles():
    ref = anomaly_reference(np.array([0.5] * 50 + [0.7] * 50), bins=20, source="t")
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-5)
    assert len(ref.edges) == len(set(ref.edges))


def test_softmax_of_logits():
    probs = as_probs(np.array([[0.0, np.log(3.0)], [1000.0, 0.0]]), "logits")
    assert probs == pytest.approx(np.array([[0.25, 0.75], [1.0, 0.0]]))
    same = np.array([[0.2, 0.8]])
    assert np.array_equal(as_probs(same, "probs"), same)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_packages_carry_a_reference(name):
    pkg = builtin_package(name)
    ref = pkg.manifest.score_reference
    assert ref is not None, f"run 'edgeloop models reference' on {name}"
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-3)
    assert ref.samples >= 1000
    if pkg.manifest.task == "classify":
        assert ref.edges == CLASSIFY_EDGES
        assert sum(f for e, f in zip(ref.edges, ref.fractions, strict=False) if e >= 0.9) > 0.8
    for f in (pkg.onnx_path, pkg.path / "manifest.json"):
        assert f.stat().st_size < 1.5 * 1024 * 1024


def test_reference_command_rewrites_only_the_reference(tmp_path, capsys):
    data = tmp_path / "data"
    export_dataset(data, count=60, seed=3, condition=None, width=160)
    pkg_dir = tmp_path / "pkg"
    shutil.copytree(builtin_package("conveyor-int8").path, pkg_dir)
    before = load_package(pkg_dir).manifest
    assert main(["models", "reference", str(pkg_dir), "--data", str(data)]) == 0
    after = load_package(pkg_dir).manifest  # still loads: the ONNX digest is unchanged
    assert after.sha256 == before.sha256
    assert after.model_dump(exclude={"score_reference"}) == before.model_dump(
        exclude={"score_reference"}
    )
    assert after.score_reference is not None
    assert after.score_reference != before.score_reference
    assert after.score_reference.samples == len(list((data / "val").rglob("*.png")))
    assert "score reference of 9 val samples" in capsys.readouterr().out


def test_reference_of_an_anomaly_package_on_csv_data(tmp_path):
    from edge_node.sources.machine import export_csv

    export_csv(tmp_path, seconds=40, seed=4)
    pkg = builtin_package("machine-anomaly-fp32")
    ref = compute_reference(pkg, tmp_path, split="val")
    assert ref.samples > 50
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-5)
    assert max(ref.fractions) < 0.1


def test_reference_without_the_split_is_an_error(tmp_path):
    from cloud_stream.training.imagefolder import TrainingDataError

    export_dataset(tmp_path, count=6, seed=3, condition=None, width=160)  # all in train
    with pytest.raises(TrainingDataError, match="no test images"):
        compute_reference(builtin_package("conveyor-fp32"), tmp_path, split="test")


def test_probs_are_renormalised_as_the_edge_reads_them():
    """INT8 outputs are multiples of 1/255 that do not sum to 1; the edge clips and
    renormalises them, so the reference must too (else 1.0 scores look like drift)."""
    from cloud_stream.training.score_reference import as_probs

    raw = np.array([[254 / 255, 0.0, 0.0], [0.5, 0.25, -0.01], [0.0, 0.0, 0.0]])
    p = as_probs(raw, "probs")
    assert p.sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert p[0, 0] == pytest.approx(1.0), "a lone 254/255 is a certain 1.0 for the edge"
    assert p[1].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert p[2].tolist() == pytest.approx([1 / 3] * 3), "all-zero output: uniform"
