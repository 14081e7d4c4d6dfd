"""Image-folder datasets: both layouts, clear errors, the manifest's input steps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cloud_stream.training.imagefolder import (
    TrainingDataError,
    collection,
    load_split,
    prepare,
    require_split,
    scan,
    to_input,
)
from pipeline.modelpkg import ImageInput


def _write(path, value=128, shape=(30, 40, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def test_flat_layout_gets_a_deterministic_hash_split(tmp_path):
    for lab in ("good", "bad"):
        for i in range(40):
            _write(tmp_path / lab / f"{i}.png")
    a, b = scan(tmp_path), scan(tmp_path)
    assert a.labels == ("bad", "good")
    assert a.splits == b.splits
    sizes = {s: len(v) for s, v in a.splits.items()}
    assert sum(sizes.values()) == 80
    assert sizes["train"] > sizes.get("val", 0)
    assert sizes["train"] > sizes.get("test", 0)


def test_split_layout_and_declared_label_order(tmp_path):
    (tmp_path / "dataset.json").write_text('{"labels": ["ok", "dent", "scratch"]}')
    _write(tmp_path / "train" / "scratch" / "0.png")
    _write(tmp_path / "train" / "ok" / "1.png")
    _write(tmp_path / "test" / "ok" / "2.png")
    ds = scan(tmp_path)
    assert ds.labels == ("ok", "dent", "scratch")
    assert sorted(y for _, y in ds.split("train")) == [0, 2]
    assert len(ds.split("test")) == 1
    assert ds.split("val") == []


@pytest.mark.parametrize("case", ["missing", "empty", "one_class"])
def test_bad_datasets_raise_with_a_hint(tmp_path, case):
    root = tmp_path / "data"
    if case != "missing":
        root.mkdir()
    if case == "one_class":
        _write(root / "ok" / "0.png")
    with pytest.raises(TrainingDataError) as err:
        scan(root)
    assert err.value.hint
    assert err.value.where == str(root)


def test_a_test_only_dataset_scans_but_cannot_train(tmp_path):
    _write(tmp_path / "test" / "ok" / "0.png")
    _write(tmp_path / "test" / "bad" / "0.png")
    ds = scan(tmp_path)
    assert len(require_split(ds, "test")) == 2
    with pytest.raises(TrainingDataError, match="no train images") as err:
        require_split(ds, "train")
    assert err.value.hint


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "x" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    spec = ImageInput(width=8, height=8)
    with pytest.raises(TrainingDataError, match="unreadable") as err:
        load_split([(bad, 0)], spec)
    assert err.value.where == str(bad)


def test_prepare_crops_the_centre_square_and_converts_colour():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, :, 0] = 200  # blue in BGR
    frame[12:108, 32:128, 2] = 100  # red inside the central 96x96 square
    spec = ImageInput(width=96, height=96, crop=0.8, color="rgb")
    out = prepare(frame, spec)
    assert out.shape == (96, 96, 3)
    assert (out[:, :, 0] == 100).all()  # red first in RGB, and only the crop is left
    assert (out[:, :, 2] == 200).all()
    gray = prepare(frame, ImageInput(width=48, height=48, color="gray", mean=(0,), std=(1,)))
    assert gray.shape == (48, 48, 1)
    box = prepare(frame, ImageInput(width=64, height=64, resize="letterbox"))
    assert box.shape == (64, 64, 3)
    assert (box[0] == 0).all()  # padded band


def test_to_input_normalises_and_lays_out_nchw():
    batch = np.full((2, 8, 8, 3), 255, np.uint8)
    spec = ImageInput(width=8, height=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = to_input(batch, spec)
    assert x.shape == (2, 3, 8, 8)
    assert x.dtype == np.float32
    assert np.allclose(x, 2.0)


def test_collection_puts_in_distribution_first(tmp_path):
    for name, cond in (("a_drift", '"dim_light"'), ("base", "null")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(f'{{"condition": {cond}}}')
        _write(tmp_path / name / "train" / "ok" / "0.png")
        _write(tmp_path / name / "train" / "bad" / "0.png")
    sets = collection(tmp_path)
    assert [d.condition for d in sets] == [None, "dim_light"]
    assert len(collection(tmp_path / "base")) == 1
