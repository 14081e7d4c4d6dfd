"""The conveyor simulator: deterministic, every class, drift that shows, dataset export."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from edge_node.sources.base import REGISTRY, Frame, SourceError
from edge_node.sources.conveyor import (
    CLASSES,
    CONDITIONS,
    ConveyorConfig,
    ConveyorSource,
    DriftStep,
    export_dataset,
)
from edge_node.sources.conveyor_scene import ConveyorScene


@pytest.fixture(scope="module")
def scene() -> ConveyorScene:
    return ConveyorScene(160, seed=3)


def test_registered():
    assert REGISTRY["sim.conveyor"] == (ConveyorConfig, ConveyorSource)


def test_frame_shape_and_dtype():
    for width in (160, 640):
        img = ConveyorScene(width, seed=0).render(0).image
        assert img.shape == (width * 3 // 4, width, 3)
        assert img.dtype == np.uint8


def test_same_seed_same_frames_other_seed_differs(scene):
    again = ConveyorScene(160, seed=3)
    for i in (0, 7, 123):
        a, b = scene.render(i), again.render(i)
        assert a.label == b.label
        assert np.array_equal(a.image, b.image)
    other = ConveyorScene(160, seed=4).render(7).image
    assert not np.array_equal(scene.render(7).image, other)


def test_every_class_appears_and_ok_is_about_half(scene):
    labels = Counter(scene.label_of(i) for i in range(600))
    assert set(labels) == set(CLASSES)
    assert 0.4 < labels["ok"] / 600 < 0.6
    assert all(scene.render(i).label == scene.label_of(i) for i in range(20))


def _stats(scene: ConveyorScene, condition: str | None) -> np.ndarray:
    imgs = np.stack([scene.render(i, condition).image for i in range(8)]).astype(np.float64)
    return imgs.reshape(-1, 3).mean(0)


def test_drift_conditions_change_the_image(scene):
    base = _stats(scene, None)
    dim = _stats(scene, "dim_light")
    assert dim.mean() < 0.6 * base.mean()
    cast = _stats(scene, "color_cast")
    assert np.abs(cast / cast.mean() - base / base.mean()).max() > 0.08
    for cond in ("new_finish", "camera_shift"):
        diffs = [
            np.abs(scene.render(i, cond).image.astype(int) - scene.render(i).image).mean()
            for i in range(4)
        ]
        assert min(diffs) > 3.0, cond


def test_unknown_condition_is_refused(scene):
    with pytest.raises(ValueError, match="unknown condition"):
        scene.render(0, "fog")


def test_source_yields_frames_then_is_exhausted():
    src = ConveyorSource(ConveyorConfig(name="cam0", width=160, count=3, seed=1))
    src.open()
    frames = [src.read() for _ in range(3)]
    assert src.exhausted
    assert src.read() is None
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames if f] == [0, 1, 2]
    assert all(f.truth in CLASSES and f.condition is None for f in frames if f)
    src.close()


def test_drift_schedule_switches_condition_by_frame():
    cfg = ConveyorConfig(
        name="cam0",
        width=160,
        count=6,
        drift=(
            DriftStep(condition="dim_light", after_frames=2),
            DriftStep(condition="none", after_frames=4),
        ),
    )
    src = ConveyorSource(cfg)
    got = []
    while not src.exhausted:
        frame = src.read()
        assert isinstance(frame, Frame)
        got.append(frame.condition)
    assert got == [None, None, "dim_light", "dim_light", None, None]
    assert src.condition_at(0, elapsed_s=0.0) is None


def test_time_based_drift():
    cfg = ConveyorConfig(name="cam0", drift=(DriftStep(condition="camera_shift", after_s=60),))
    src = ConveyorSource(cfg)
    assert src.condition_at(10, elapsed_s=59.0) is None
    assert src.condition_at(10, elapsed_s=61.0) == "camera_shift"


def test_fps_pacing_returns_none_when_next_frame_is_not_due():
    src = ConveyorSource(ConveyorConfig(name="cam0", width=160, fps=0.5))
    src.open()
    assert isinstance(src.read(timeout=0.0), Frame)
    assert src.read(timeout=0.0) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "cam0", "width": 162},
        {"name": "cam0", "colour": "red"},
        {"name": "cam0", "drift": [{"condition": "fog", "after_frames": 1}]},
        {"name": "cam0", "drift": [{"condition": "dim_light"}]},
        {"name": "cam0", "drift": [{"condition": "dim_light", "after_frames": 1, "after_s": 2}]},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        ConveyorConfig.model_validate(bad)


def test_export_dataset_layout(tmp_path):
    summary = export_dataset(tmp_path, count=40, seed=2, condition="color_cast", width=96)
    assert "40" in summary
    assert "color_cast" in summary
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["labels"] == list(CLASSES)
    assert meta["condition"] == "color_cast"
    assert meta["seed"] == 2
    assert meta["generator"].startswith("conveyor-sim")
    files = sorted(tmp_path.glob("*/*/*.png"))
    assert len(files) == 40
    splits = Counter(p.parent.parent.name for p in files)
    assert splits == {"train": 28, "val": 6, "test": 6}
    assert all(p.parent.name in CLASSES for p in files)
    assert sum(sum(v.values()) for v in meta["splits"].values()) == 40
    first = tmp_path / "train" / ConveyorScene(96, seed=2).label_of(0) / "00000.png"
    assert first.is_file()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"condition": "fog", "count": 5, "width": 96}, "unknown drift condition"),
        ({"condition": None, "count": 0, "width": 96}, "count"),
        ({"condition": None, "count": 5, "width": 98}, "width"),
    ],
)
def test_export_dataset_refuses_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(SourceError, match=match):
        export_dataset(tmp_path, seed=0, **kwargs)


def test_conditions_are_the_documented_ones():
    assert set(CONDITIONS) == {"dim_light", "color_cast", "new_finish", "camera_shift"}
