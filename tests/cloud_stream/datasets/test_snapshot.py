"""Snapshots: versions, dedup, stable split, corrections, immutability, the train reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_stream.datasets import (
    DatasetConfig,
    DatasetError,
    SampleWriter,
    SplitConfig,
    import_corrections,
    list_versions,
    load_version,
    open_store,
    pool_stats,
    snapshot,
    split_of,
)
from cloud_stream.datasets.snapshot import LOCK, dedup
from cloud_stream.training.imagefolder import scan

from .conftest import jpeg, meta, phash_of


def _fill(config, n=20, **fields):
    writer = SampleWriter(config)
    metas = []
    for i in range(n):
        m = meta(teacher_label=("dent", "ok")[i % 2], **fields)
        assert writer.add(jpeg(i), m)
        metas.append(m)
    return metas


def test_empty_pool_is_a_clear_error(config):
    with pytest.raises(DatasetError, match="the pool is empty"):
        snapshot(config)
    assert list_versions(config) == []


def test_first_version_layout_counts_and_provenance(config):
    metas = _fill(config)
    v = snapshot(config, note="first")
    assert (v.version, v.parent, v.note, v.total, v.pool_size) == ("v0001", None, "first", 20, 20)
    assert v.labels == ["dent", "ok"]
    assert sum(sum(c.values()) for c in v.counts.values()) == 20
    assert sum(v.counts[s]["dent"] for s in v.counts) == 10
    by_id = {r.frame_id: r for r in v.samples}
    store = open_store(config)
    for m in metas:
        rec = by_id[m.frame_id]
        assert rec.split == split_of(m.frame_id, config.split)
        assert rec.path == f"{rec.split}/{m.teacher_label}/{m.frame_id}.jpg"
        assert (rec.device, rec.site, rec.ts, rec.result_id) == (
            m.device,
            m.site,
            m.ts,
            m.result_id,
        )
        assert rec.edge_model == "conveyor-int8@1.2.0"
        assert (rec.teacher_label, rec.label_source) == (m.teacher_label, "teacher")
    manifest = json.loads(store.get("versions/v0001/manifest.json"))
    assert manifest["version"] == "v0001"
    assert len(manifest["samples"]) == 20
    assert json.loads(store.get("versions/v0001/dataset.json"))["labels"] == ["dent", "ok"]


def test_version_images_are_the_pool_jpegs(config):
    metas = _fill(config, n=4)
    v = snapshot(config)
    store = open_store(config)
    for i, m in enumerate(metas):
        [rec] = [r for r in v.samples if r.frame_id == m.frame_id]
        assert store.get(f"versions/{v.version}/{rec.path}") == jpeg(i)


def test_models_train_reader_reads_a_version(local_config):
    _fill(local_config, n=60)
    v = snapshot(local_config)
    ds = scan(Path(v.location))
    assert ds.labels == ("dent", "ok")
    assert sum(len(items) for items in ds.splits.values()) == 60
    for split, items in ds.splits.items():
        for label in ds.labels:
            n = sum(1 for _, y in items if ds.labels[y] == label)
            assert n == v.counts[split][label]


def test_declared_labels_keep_the_model_order(tmp_path):
    config = DatasetConfig(root=str(tmp_path), labels=["ok", "scratch", "dent"])
    _fill(config, n=10)
    v = snapshot(config)
    assert v.labels == ["ok", "scratch", "dent"]
    assert v.counts["train"]["scratch"] == 0
    assert scan(Path(v.location)).labels == ("ok", "scratch", "dent")


def test_versions_number_up_and_split_is_stable(config):
    first = _fill(config, n=30)
    v1 = snapshot(config)
    _fill(config, n=30)
    v2 = snapshot(config, note="more")
    assert (v2.version, v2.parent, v2.total) == ("v0002", "v0001", 60)
    split1 = {r.frame_id: r.split for r in v1.samples}
    split2 = {r.frame_id: r.split for r in v2.samples}
    assert all(split2[m.frame_id] == split1[m.frame_id] for m in first)
    assert [v.version for v in list_versions(config)] == ["v0001", "v0002"]
    assert load_version(config, "latest").version == "v0002"
    assert load_version(config, 1).version == load_version(config, "v1").version == "v0001"
    assert load_version(config, "v0001").samples == v1.samples


def test_split_fractions_are_roughly_kept():
    split = SplitConfig()
    names = [split_of(f"frame{i:08d}", split) for i in range(4000)]
    assert 0.77 < names.count("train") / 4000 < 0.83
    assert 0.08 < names.count("val") / 4000 < 0.12
    only_train = SplitConfig(train=1.0, val=0.0, test=0.0)
    assert {split_of(f"frame{i:08d}", only_train) for i in range(200)} == {"train"}


def test_near_duplicates_of_one_label_are_dropped_keeping_the_earliest(config):
    writer = SampleWriter(config)
    base = int(phash_of(5), 16)
    early = meta(ts=100, phash=f"{base:016x}", teacher_label="dent")
    near = meta(ts=200, phash=f"{base ^ 0b111111:016x}", teacher_label="dent")  # 6 bits off
    far = meta(ts=300, phash=f"{base ^ 0b1111111:016x}", teacher_label="dent")  # 7 bits off
    other_label = meta(ts=50, phash=f"{base:016x}", teacher_label="ok")
    for m in (near, far, early, other_label):  # arrival order does not matter
        writer.add(jpeg(), m)
    v = snapshot(config)
    assert {r.frame_id for r in v.samples} == {early.frame_id, far.frame_id, other_label.frame_id}
    assert v.duplicates_removed == 1
    assert v.duplicates == [(near.frame_id, early.frame_id)]


def test_dedup_is_deterministic_and_greedy():
    items = [("a", f"{h:016x}", str(i)) for i, h in enumerate([0, 0b11, 0b1111, 0xFF])]
    assert dedup(items, 2) == ([0, 2, 3], [(1, 0)])
    assert dedup(items, 0) == ([0, 1, 2, 3], [])
    many = [("a", f"{i << 20:016x}", str(i)) for i in range(500)]
    kept, dropped = dedup(many, 0)
    assert len(kept) == 500
    assert not dropped


def test_corrections_override_the_teacher(config, tmp_path):
    metas = _fill(config, n=6)
    path = tmp_path / "fix.csv"
    path.write_text(f"id,label\n{metas[0].frame_id},scratch\n{metas[1].frame_id},dent\n")
    import_corrections(config, path)
    v = snapshot(config)
    by_id = {r.frame_id: r for r in v.samples}
    assert (by_id[metas[0].frame_id].label, by_id[metas[0].frame_id].label_source) == (
        "scratch",
        "human",
    )
    assert by_id[metas[0].frame_id].teacher_label == "dent"
    assert by_id[metas[0].frame_id].path.split("/")[1] == "scratch"
    assert by_id[metas[1].frame_id].label == "dent"
    assert by_id[metas[2].frame_id].label_source == "teacher"
    assert v.corrections_applied == 2
    assert "scratch" in v.labels
    stats = pool_stats(config)
    assert stats.by_label == {"dent": 3, "ok": 2, "scratch": 1}
    assert stats.corrected == 2


def test_a_version_is_never_written_into(config):
    _fill(config, n=4)
    v1 = snapshot(config)
    store = open_store(config)
    before = {k: store.get(k) for k in store.walk("versions/v0001")}
    _fill(config, n=4)
    snapshot(config)
    assert {k: store.get(k) for k in store.walk("versions/v0001")} == before
    assert load_version(config, 1) == v1
    assert not store.claim_dir("versions/v0001")


def test_incomplete_version_is_ignored_then_cleaned(config):
    _fill(config, n=4)
    snapshot(config)
    store = open_store(config)
    store.put("versions/v0002/train/ok/half.jpg", b"\xff\xd8\xff")  # crashed before manifest
    assert [v.version for v in list_versions(config)] == ["v0001"]
    with pytest.raises(DatasetError, match="no version 'v0002'"):
        load_version(config, "v0002")
    v2 = snapshot(config)
    assert v2.version == "v0002"
    assert not store.exists("versions/v0002/train/ok/half.jpg")


def test_a_running_snapshot_blocks_another(config):
    _fill(config, n=2)
    store = open_store(config)
    store.put(LOCK, b'{"pid": 1, "host": "h", "started": 9e99}')
    with pytest.raises(DatasetError, match="another snapshot is running"):
        snapshot(config)
    store.put(LOCK, b'{"pid": 1, "host": "h", "started": 0}')  # stale: taken over
    assert snapshot(config).version == "v0001"
    assert not store.exists(LOCK)


def test_unknown_version_lists_the_known_ones(config):
    _fill(config, n=2)
    snapshot(config)
    with pytest.raises(DatasetError) as info:
        load_version(config, "v9")
    assert "versions: v0001" in str(info.value)
    with pytest.raises(DatasetError, match="run a snapshot first"):
        load_version(DatasetConfig(root=config.root, name="empty"), "latest")


def test_pool_stats(config):
    _fill(config, n=4)
    SampleWriter(config).add(jpeg(), meta(reason="audit", device="cam-09"))
    stats = pool_stats(config)
    assert stats.total == 5
    assert stats.by_label == {"dent": 3, "ok": 2}
    assert stats.by_reason == {"audit": 1, "uncertain": 4}
    assert stats.by_device == {"cam-01": 4, "cam-09": 1}
