"""Both storage backends: atomic and exclusive writes, listing, copies, claims."""

from __future__ import annotations

import os
import time

import pytest

from cloud_stream.datasets import DatasetError, FsspecStore, LocalStore, open_store


@pytest.fixture
def store(config):
    return open_store(config)


def test_open_store_picks_the_backend(tmp_path, config):
    store = open_store(config)
    expected = LocalStore if "://" not in config.root else FsspecStore
    assert isinstance(store, expected)
    from cloud_stream.datasets import DatasetConfig

    assert isinstance(open_store(DatasetConfig(root=f"file://{tmp_path}")), LocalStore)


def test_put_get_and_exclusive(store):
    assert store.put("a/b/x.bin", b"one")
    assert store.get("a/b/x.bin") == b"one"
    assert store.put("a/b/x.bin", b"two")
    assert store.get("a/b/x.bin") == b"two"
    assert not store.put("a/b/x.bin", b"three", exclusive=True)
    assert store.get("a/b/x.bin") == b"two"
    assert store.put("a/b/y.bin", b"new", exclusive=True)


def test_walk_and_children_skip_hidden_names(store):
    for key in ("p/1/a.json", "p/2/b.jpg", "p/.lock", "q.txt"):
        store.put(key, b"x")
    assert store.walk("p") == ["p/1/a.json", "p/2/b.jpg"]
    assert store.children("p") == ["1", "2"]
    assert store.children("missing") == []
    assert store.walk("missing") == []


def test_writes_leave_no_temporary_files(store):
    for i in range(20):
        store.put(f"d/{i}.bin", b"x" * i + b"y")
        store.put(f"d/{i}.bin", b"z", exclusive=True)
    if isinstance(store, LocalStore):
        names = os.listdir(store.local_path("d"))
    else:
        names = [p.rsplit("/", 1)[-1] for p in store.fs.find(store._path("d"))]
    assert sorted(names) == sorted(f"{i}.bin" for i in range(20))


def test_claim_dir_is_exclusive(store):
    assert store.claim_dir("versions/v0001")
    assert not store.claim_dir("versions/v0001")
    assert store.children("versions") == ["v0001"]


def test_copy_and_remove(store):
    store.put("src/a.jpg", b"jpeg")
    store.copy("src/a.jpg", "dst/x/a.jpg")
    assert store.get("dst/x/a.jpg") == b"jpeg"
    store.remove("dst")
    assert not store.exists("dst/x/a.jpg")
    store.remove("dst")  # missing is fine


def test_missing_file_is_a_clear_error(store):
    with pytest.raises(DatasetError, match="cannot read"):
        store.get("nope.json")


def test_clean_temp_removes_only_stale_temporary_files(local_config):
    store = open_store(local_config)
    store.put("pool/00/a.json", b"{}")
    folder = store.local_path("pool/00")
    stale, fresh = folder / ".a.jpg.tmp-1", folder / ".b.jpg.tmp-2"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert store.clean_temp("pool", 3600) == 1
    assert not stale.exists()
    assert fresh.exists()
    assert (folder / "a.json").exists()


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(DatasetError, match="cannot open storage"):
        FsspecStore("nosuchproto://bucket/x")
