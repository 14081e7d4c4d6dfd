"""SampleWriter: policy, idempotent and atomic adds, threads, a crash in the middle."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from cloud_stream.datasets import (
    DatasetConfig,
    DatasetError,
    SampleWriter,
    open_store,
    read_pool,
)
from cloud_stream.datasets.pool import jpeg_key, meta_key, pool_ids

from .conftest import jpeg, meta


def _all_files(store, prefix="pool"):
    """Every file under prefix, hidden ones included (to find temporary files)."""
    if store.local_path(prefix) is not None:
        root = store.local_path(prefix)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return sorted(store._rel(p) for p in store.fs.find(store._path(prefix)))


def test_add_stores_jpeg_and_metadata(config):
    writer = SampleWriter(config)
    m = meta()
    data = jpeg(1)
    assert writer.add(data, m)
    assert writer.contains(m.frame_id)
    assert writer.store.get(jpeg_key(m.frame_id)) == data
    [entry] = read_pool(writer.store)
    assert entry.sample == m
    assert entry.jpeg_bytes == len(data)
    assert writer.counts == {"added": 1}


def test_adding_the_same_frame_again_is_a_no_op(config):
    writer = SampleWriter(config)
    m = meta()
    assert writer.add(jpeg(1), m)
    before = writer.store.get(meta_key(m.frame_id))
    assert not writer.add(jpeg(2), m)
    assert not SampleWriter(config).add(jpeg(3), m)  # a restarted worker replaying
    assert writer.store.get(meta_key(m.frame_id)) == before
    assert writer.store.get(jpeg_key(m.frame_id)) == jpeg(1)
    assert len(read_pool(writer.store)) == 1
    assert writer.counts == {"added": 1, "duplicate": 1}


def test_policy_skips_are_counted_and_not_stored(config):
    writer = SampleWriter(config)
    assert not writer.add(jpeg(), meta(reason="audit", agree=True, teacher_label="ok"))
    assert not writer.add(jpeg(), meta(teacher_score=0.3))
    assert writer.add(jpeg(), meta(reason="audit", agree=False))
    assert writer.counts == {"agreement_off": 1, "low_teacher_score": 1, "added": 1}
    assert len(pool_ids(writer.store)) == 1


def test_not_a_jpeg_is_refused(config):
    with pytest.raises(DatasetError, match="not a JPEG"):
        SampleWriter(config).add(b"\x89PNG....", meta())


def test_no_temporary_files_are_left(config):
    writer = SampleWriter(config)
    metas = [meta() for _ in range(30)]
    for m in metas:
        writer.add(jpeg(), m)
        writer.add(jpeg(), m)
    files = _all_files(writer.store)
    assert not [f for f in files if ".tmp-" in f]
    assert len(files) == 60


def test_threads_adding_the_same_frames_store_each_once(config):
    writer = SampleWriter(config)
    metas = [meta() for _ in range(40)]
    data = jpeg(5)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work() -> None:
        start.wait()
        mine = [writer.add(data, m) for m in metas]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 40
    assert pool_ids(writer.store) == {m.frame_id for m in metas}
    assert writer.counts == {"added": 40, "duplicate": 200}


def test_failure_before_the_metadata_leaves_no_visible_sample(config, monkeypatch):
    writer = SampleWriter(config)
    m = meta()
    real_put = type(writer.store).put

    def failing_put(self, key, data, *, exclusive=False):
        if key.endswith(".json"):
            raise DatasetError("disk full", where=key)
        return real_put(self, key, data, exclusive=exclusive)

    monkeypatch.setattr(type(writer.store), "put", failing_put)
    with pytest.raises(DatasetError, match="disk full"):
        writer.add(jpeg(1), m)
    assert not writer.contains(m.frame_id)
    assert read_pool(writer.store) == []
    monkeypatch.undo()
    assert writer.add(jpeg(1), m)  # the replay stores it
    assert [e.sample for e in read_pool(writer.store)] == [m]


def test_failure_while_writing_a_file_leaves_no_temporary_file(local_config, monkeypatch):
    writer = SampleWriter(local_config)
    m = meta()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(DatasetError, match="No space left"):
        writer.add(jpeg(1), m)
    monkeypatch.undo()
    assert _all_files(writer.store) == []


def test_a_process_killed_mid_add_leaves_no_visible_sample(local_config, tmp_path):
    """kill -9 between the JPEG and the metadata: nothing visible, the replay adds it."""
    m = meta()
    (tmp_path / "meta.json").write_text(m.model_dump_json())
    (tmp_path / "frame.jpg").write_bytes(jpeg(1))
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from cloud_stream.datasets import DatasetConfig, SampleMeta, SampleWriter

        real_link = os.link
        def die(src, dst):  # the metadata is linked into place: die just before
            os._exit(9)
        os.link = die
        config = DatasetConfig(root={local_config.root!r})
        meta = SampleMeta.model_validate_json(Path({str(tmp_path / "meta.json")!r}).read_text())
        SampleWriter(config).add(Path({str(tmp_path / "frame.jpg")!r}).read_bytes(), meta)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=60
    )
    assert proc.returncode == 9, proc.stderr.decode()
    store = open_store(local_config)
    left = _all_files(store)
    assert any(".tmp-" in f for f in left)  # the crash could not clean up
    assert read_pool(store) == []
    assert not SampleWriter(local_config).contains(m.frame_id)
    assert SampleWriter(local_config).add(jpeg(1), m)
    assert [e.sample for e in read_pool(store)] == [m]


def test_read_pool_skips_damaged_metadata_and_missing_jpegs(local_config, caplog):
    writer = SampleWriter(local_config)
    good, damaged, orphan = meta(), meta(), meta()
    for m in (good, damaged, orphan):
        writer.add(jpeg(), m)
    writer.store.put(meta_key(damaged.frame_id), b"{not json")
    writer.store.remove(jpeg_key(orphan.frame_id))
    assert [e.sample for e in read_pool(writer.store)] == [good]
    assert "unreadable" in caplog.text
    assert "JPEG is missing" in caplog.text


def test_read_pool_is_sorted_by_capture_time(config):
    writer = SampleWriter(config)
    metas = [meta(ts=t) for t in (30, 10, 20)]
    for m in metas:
        writer.add(jpeg(), m)
    assert [e.sample.ts for e in read_pool(writer.store)] == [10, 20, 30]


def test_config_without_store_uses_its_root(tmp_path):
    config = DatasetConfig(root=str(tmp_path), name="line9")
    m = meta()
    SampleWriter(config).add(jpeg(), m)
    assert (tmp_path / "line9" / meta_key(m.frame_id)).is_file()
