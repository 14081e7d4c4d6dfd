"""The byte cap: eviction order by priority, counters, and a property test of the rule."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_node.outbox import DROPPED, Outbox, Priority, default_priority
from edge_node.outbox.messages import ROW_OVERHEAD
from pipeline.topics import Stream

SIZE = 100 + ROW_OVERHEAD  # what a 100-byte payload costs against the cap


def _put(box: Outbox, stream: Stream, priority: Priority | None = None, size: int = 100) -> int:
    return box.put(stream, b"x" * size, seq=box.next_seq(), priority=priority)


def test_default_priorities_follow_the_design():
    order = [Stream.FRAME, Stream.TELEMETRY, Stream.RESULT, Stream.OTA_REPORT, Stream.STATUS]
    prios = [default_priority(s) for s in order]
    assert prios == sorted(prios)
    assert prios[-1] is Priority.STATUS
    assert not Priority.STATUS.evictable
    assert Priority.ALERT > Priority.RESULT


def test_frames_go_first_then_telemetry_then_results(outbox_factory):
    box = outbox_factory(max_bytes=4 * SIZE)
    frame = _put(box, Stream.FRAME)
    tele = _put(box, Stream.TELEMETRY)
    res = _put(box, Stream.RESULT)
    alert = _put(box, Stream.RESULT, Priority.ALERT)
    # Full. A result evicts the frame, the next the telemetry, the next the oldest result.
    r2 = _put(box, Stream.RESULT)
    assert {r.row_id for r in box.pending(10)} == {tele, res, alert, r2}
    r3 = _put(box, Stream.RESULT)
    assert {r.row_id for r in box.pending(10)} == {res, alert, r2, r3}
    r4 = _put(box, Stream.RESULT)
    assert {r.row_id for r in box.pending(10)} == {alert, r2, r3, r4}
    assert frame not in {r.row_id for r in box.pending(10)}
    assert box.evictions == {"frame": 1, "telemetry": 1, "result": 1, "alert": 0, "status": 0}
    assert box.evicted_bytes["frame"] == SIZE
    assert box.rejected == dict.fromkeys(box.rejected, 0)
    assert box.bytes_used() <= box.max_bytes


def test_a_new_low_priority_message_is_dropped_when_only_higher_ones_are_left(outbox_factory):
    box = outbox_factory(max_bytes=3 * SIZE)
    kept = [_put(box, Stream.RESULT) for _ in range(3)]
    assert _put(box, Stream.FRAME) == DROPPED
    assert _put(box, Stream.TELEMETRY) == DROPPED
    assert [r.row_id for r in box.pending(10)] == kept
    assert box.evictions["frame"] == box.rejected["frame"] == 1
    assert box.evictions["telemetry"] == box.rejected["telemetry"] == 1
    assert box.evictions["result"] == 0


def test_a_newer_frame_replaces_the_oldest_frame(outbox_factory):
    box = outbox_factory(max_bytes=2 * SIZE)
    f1, f2 = _put(box, Stream.FRAME), _put(box, Stream.FRAME)
    f3 = _put(box, Stream.FRAME)
    assert [r.row_id for r in box.pending(10)] == [f2, f3]
    assert f1 not in (f2, f3)
    assert box.evictions["frame"] == 1
    assert box.rejected["frame"] == 0


def test_nothing_is_evicted_when_it_would_not_make_enough_room(outbox_factory):
    box = outbox_factory(max_bytes=3 * SIZE)
    frame = _put(box, Stream.FRAME)
    results = [_put(box, Stream.RESULT) for _ in range(2)]
    # A large telemetry message would need the frame and a result gone: it may only
    # evict the frame, which is not enough, so the frame stays and it is dropped.
    assert _put(box, Stream.TELEMETRY, size=2 * 100 + ROW_OVERHEAD) == DROPPED
    assert [r.row_id for r in box.pending(10)] == [frame, *results]
    assert box.evictions == {"frame": 0, "telemetry": 1, "result": 0, "alert": 0, "status": 0}


def test_one_big_message_evicts_several_small_ones(outbox_factory):
    box = outbox_factory(max_bytes=4 * SIZE)
    frames = [_put(box, Stream.FRAME) for _ in range(4)]
    big = _put(box, Stream.RESULT, size=2 * SIZE - ROW_OVERHEAD)
    assert [r.row_id for r in box.pending(10)] == [frames[2], frames[3], big]
    assert box.evictions["frame"] == 2


def test_status_is_never_evicted(outbox_factory):
    box = outbox_factory(max_bytes=3 * SIZE)
    status = [_put(box, Stream.STATUS) for _ in range(2)]
    _put(box, Stream.RESULT, Priority.ALERT)
    # Alerts may evict only alerts and below; status rows stay.
    alert2 = _put(box, Stream.RESULT, Priority.ALERT)
    assert [r.row_id for r in box.pending(10)] == [*status, alert2]
    # A status evicts the alert, then has nothing left to evict.
    s3 = _put(box, Stream.STATUS)
    assert [r.row_id for r in box.pending(10)] == [*status, s3]
    assert _put(box, Stream.STATUS) == DROPPED
    assert box.evictions["status"] == box.rejected["status"] == 1
    assert box.depth() == 3


def test_a_message_larger_than_the_cap_is_dropped(outbox_factory):
    box = outbox_factory(max_bytes=SIZE)
    assert _put(box, Stream.STATUS, size=1000) == DROPPED
    assert box.depth() == 0
    assert box.rejected["status"] == 1


def test_evicting_an_inflight_row_forgets_it(outbox_factory):
    box = outbox_factory(max_bytes=2 * SIZE)
    f1 = _put(box, Stream.FRAME)
    box.take(1)
    _put(box, Stream.RESULT)
    _put(box, Stream.RESULT)  # evicts the in-flight frame
    assert box.inflight() == 0
    assert box.ack([f1]) == 0
    assert box.depth() == 2


_STREAMS = st.sampled_from([Stream.FRAME, Stream.TELEMETRY, Stream.RESULT, Stream.STATUS])
_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"), _STREAMS, st.booleans(), st.integers(0, 600)
        ),  # (op, stream, alert, size)
        st.tuples(st.just("ack"), st.integers(0, 5)),
        st.tuples(st.just("reopen")),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS, cap=st.integers(200, 3000))
def test_cap_holds_and_nothing_is_lost_but_counted_evictions(tmp_path_factory, ops, cap):
    path = tmp_path_factory.mktemp("prop") / "o.db"
    box = Outbox(path, max_bytes=cap, device="cam-01")
    stored: dict[int, tuple[int, Priority, int]] = {}  # row id -> (seq, priority, size)
    put_count, acked = 0, set()
    evicted_total = 0
    try:
        for op in ops:
            if op[0] == "put":
                _, stream, alert, size = op
                prio = Priority.ALERT if alert and stream is Stream.RESULT else None
                row = box.put(stream, b"p" * size, seq=box.next_seq(), priority=prio)
                put_count += 1
                if row != DROPPED:
                    stored[row] = (0, prio or default_priority(stream), size + ROW_OVERHEAD)
            elif op[0] == "ack":
                rows = box.take(op[1])
                box.ack([r.row_id for r in rows])
                acked.update(r.row_id for r in rows)
            else:
                evicted_total += sum(box.evictions.values())
                box.close()
                box = Outbox(path, max_bytes=cap, device="cam-01")
            assert box.bytes_used() <= cap
            remaining = {r.row_id for r in box.pending(10_000)}
            assert remaining <= set(stored)
            assert not remaining & acked
            # Every message put is stored, acked, or counted as evicted/dropped.
            lost = put_count - len(remaining) - len(acked)
            assert lost == evicted_total + sum(box.evictions.values())
            assert box.bytes_used() == sum(stored[r][2] for r in remaining)
            assert box.depth() == len(remaining)
            # Status rows are never evicted.
            status_ids = {r for r, v in stored.items() if v[1] is Priority.STATUS}
            assert status_ids - acked <= remaining
    finally:
        box.close()
