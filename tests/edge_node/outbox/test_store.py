"""Outbox basics: put, pending in seq order, in-flight, ack, reopen, errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from edge_node.outbox import DROPPED, Outbox, OutboxError, OutboxItem, Priority
from edge_node.outbox.messages import ROW_OVERHEAD
from edge_node.outbox.store import SEQ_BLOCK
from pipeline.topics import Stream


def test_put_then_pending_in_seq_order(outbox_factory):
    box = outbox_factory()
    seqs = [box.next_seq() for _ in range(5)]
    # Put out of order: pending still follows seq.
    for seq in reversed(seqs):
        box.put(Stream.RESULT, f"r{seq}".encode(), seq=seq)
    rows = box.pending(10)
    assert [r.seq for r in rows] == seqs
    assert [r.payload for r in rows] == [f"r{s}".encode() for s in seqs]
    assert all(r.stream is Stream.RESULT and r.priority is Priority.RESULT for r in rows)
    assert box.depth() == 5
    assert box.pending(2) == rows[:2]


def test_properties_round_trip_in_order(outbox_factory):
    box = outbox_factory()
    props = {"type": "frame", "v": "1", "model.name": "m", "z": "last"}
    box.put(Stream.FRAME, b"\xff\xd8jpeg", seq=box.next_seq(), properties=props)
    [row] = box.pending(1)
    assert row.properties == props
    assert list(row.properties) == list(props)
    assert row.payload == b"\xff\xd8jpeg"


def test_inflight_rows_are_hidden_until_released_or_acked(outbox_factory):
    box = outbox_factory()
    ids = [box.put(Stream.RESULT, b"x", seq=box.next_seq()) for _ in range(4)]
    taken = box.take(2)
    assert [r.row_id for r in taken] == ids[:2]
    assert box.inflight() == 2
    assert [r.row_id for r in box.pending(10)] == ids[2:]
    box.mark_inflight([ids[3]])
    assert [r.row_id for r in box.pending(10)] == [ids[2]]
    box.release([ids[0]])
    assert [r.row_id for r in box.pending(10)] == [ids[0], ids[2]]
    assert box.ack([ids[1], ids[3]]) == 2
    assert box.ack([ids[1]]) == 0  # already gone
    box.release()
    assert [r.row_id for r in box.pending(10)] == [ids[0], ids[2]]
    assert box.depth() == 2
    assert box.bytes_used() == 2 * (1 + ROW_OVERHEAD)


def test_unacked_rows_are_pending_again_after_reopen(outbox_factory):
    box = outbox_factory()
    for i in range(6):
        box.put(Stream.TELEMETRY, bytes([i]), seq=box.next_seq())
    taken = box.take(4)
    box.ack([r.row_id for r in taken[:2]])
    used = box.bytes_used()
    box.close()
    again = outbox_factory()
    assert again.depth() == 4
    assert again.bytes_used() == used
    assert [r.payload for r in again.pending(10)] == [bytes([i]) for i in range(2, 6)]


def test_seq_survives_reopen_and_is_never_reused(outbox_factory):
    box = outbox_factory()
    first = [box.next_seq() for _ in range(3)]
    box.put(Stream.RESULT, b"x", seq=first[-1] + 5000)  # a caller's own, larger seq
    box.close()
    again = outbox_factory()
    nxt = again.next_seq()
    assert first == sorted(set(first))
    assert nxt > first[-1] + 5000


def test_seq_is_not_reused_after_kill_without_puts(tmp_path):
    # Seqs handed out and used outside the outbox (status messages) must not come back.
    path = tmp_path / "o.db"
    code = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from edge_node.outbox import Outbox
        box = Outbox(Path({str(path)!r}), max_bytes=10**6, device="cam-01")
        print(max(box.next_seq() for _ in range({SEQ_BLOCK + 10})), flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == -9, proc.stderr
    last = int(proc.stdout.strip())
    with Outbox(path, max_bytes=10**6, device="cam-01") as box:
        assert box.next_seq() > last


def test_new_file_starts_seq_from_the_clock(outbox_factory):
    import time

    box = outbox_factory()
    assert abs(box.next_seq() - time.time_ns() // 1000) < 60_000_000


def test_put_many_is_one_transaction(outbox_factory):
    box = outbox_factory()
    s1, s2 = box.next_seq(), box.next_seq()
    ids = box.put_many(
        [
            OutboxItem(Stream.RESULT, b"result", s2, priority=Priority.ALERT),
            OutboxItem(Stream.FRAME, b"frame", s1, properties={"k": "v"}),
        ]
    )
    assert all(ids)
    rows = box.pending(10)
    assert [(r.seq, r.priority) for r in rows] == [(s1, Priority.FRAME), (s2, Priority.ALERT)]


def test_listener_is_called_after_each_stored_put(outbox_factory):
    box = outbox_factory(max_bytes=200)
    calls = []
    box.add_listener(lambda: calls.append(box.depth()))
    box.put(Stream.RESULT, b"x", seq=box.next_seq())
    box.put(Stream.FRAME, b"y" * 500, seq=box.next_seq())  # dropped: no call
    assert calls == [1]


def test_wrong_device_file_is_refused(outbox_factory):
    outbox_factory(device="cam-01").close()
    with pytest.raises(OutboxError, match="belongs to device 'cam-01'") as info:
        outbox_factory(device="cam-02")
    assert info.value.hint


def test_second_process_cannot_open_the_same_file(outbox_factory, tmp_path):
    box = outbox_factory()
    box.put(Stream.RESULT, b"x", seq=box.next_seq())
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from edge_node.outbox import Outbox, OutboxError
        try:
            Outbox(Path({str(tmp_path / "o.db")!r}), max_bytes=10**6, device="cam-01")
        except OutboxError as exc:
            print("refused:", exc.hint)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("refused:"), out


def test_wal_mode_and_sync_setting(tmp_path):
    with Outbox(tmp_path / "o.db", max_bytes=1000, device="d", synchronous="FULL") as box:
        box.put(Stream.RESULT, b"x", seq=1)
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stream": Stream.OTA}, "not published by a device"),
        ({"seq": -1}, "outside"),
        ({"seq": 2**63}, "outside"),
        ({"seq": True}, "must be an int"),
        ({"payload": "text"}, "must be bytes"),
        ({"properties": {"k": 1}}, "must map a str to a str"),
    ],
)
def test_invalid_puts_are_refused(outbox_factory, kwargs, match):
    box = outbox_factory()
    args = {"stream": Stream.RESULT, "payload": b"x", "seq": 1, **kwargs}
    with pytest.raises(OutboxError, match=match):
        box.put(args.pop("stream"), args.pop("payload"), **args)
    assert box.depth() == 0


def test_closed_outbox_refuses_use(outbox_factory):
    box = outbox_factory()
    box.close()
    box.close()  # twice is fine
    with pytest.raises(OutboxError, match="closed"):
        box.put(Stream.RESULT, b"x", seq=1)


def test_bad_arguments(tmp_path):
    with pytest.raises(OutboxError, match="max_bytes"):
        Outbox(tmp_path / "a.db", max_bytes=0, device="d")
    with pytest.raises(OutboxError, match="synchronous"):
        Outbox(tmp_path / "a.db", max_bytes=10, device="d", synchronous="OFF")  # type: ignore[arg-type]


def test_threads_put_and_ack_concurrently(outbox_factory):
    box = outbox_factory(max_bytes=10**8)
    per_thread, threads = 300, 4
    acked: list[int] = []
    done = threading.Event()

    def producer(tag: int) -> None:
        for i in range(per_thread):
            box.put(Stream.RESULT, f"{tag}-{i}".encode(), seq=box.next_seq())

    def consumer() -> None:
        while not (done.is_set() and box.depth() == 0):
            rows = box.take(50)
            box.ack([r.row_id for r in rows])
            acked.extend(r.seq for r in rows)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    reader = threading.Thread(target=consumer)
    reader.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    reader.join(30)
    assert len(acked) == len(set(acked)) == per_thread * threads
    assert box.depth() == 0
    assert box.bytes_used() == 0
    assert os.path.getsize(box.path) > 0
    assert DROPPED == 0


def test_a_returned_put_survives_kill_9(tmp_path):
    path = tmp_path / "o.db"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from edge_node.outbox import Outbox
        from pipeline.topics import Stream
        box = Outbox(Path({str(path)!r}), max_bytes=10**9, device="cam-01")
        while True:
            seq = box.next_seq()
            box.put(Stream.RESULT, b"r" * 200, seq=seq)
            print(seq, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    returned = []
    for line in proc.stdout:
        returned.append(int(line))
        if len(returned) == 2000:
            proc.kill()  # SIGKILL, while it keeps putting
            break
    proc.wait(30)
    returned.extend(int(line) for line in proc.stdout)  # lines already in the pipe
    proc.stdout.close()
    with Outbox(path, max_bytes=10**9, device="cam-01") as box:
        stored = {r.seq for r in box.pending(100_000)}
        assert set(returned) <= stored
        assert box.next_seq() > max(stored)


def test_discard_drops_only_that_stream_and_keeps_counters(tmp_path):
    from edge_node.outbox import Outbox
    from pipeline.topics import Stream

    path = tmp_path / "o.db"
    with Outbox(path, max_bytes=1 << 20, device="d1") as ob:
        for stream in (Stream.STATUS, Stream.RESULT, Stream.STATUS, Stream.TELEMETRY):
            ob.put(stream, b"x" * 10, seq=ob.next_seq())
        used = ob.bytes_used()
        assert ob.discard(Stream.STATUS) == 2
        assert ob.depth() == 2
        assert ob.bytes_used() < used
        assert {m.stream for m in ob.pending(10)} == {Stream.RESULT, Stream.TELEMETRY}
    with Outbox(path, max_bytes=1 << 20, device="d1") as ob:
        assert ob.depth() == 2, "the discard is durable"
