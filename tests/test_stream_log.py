import uuid

import pytest

from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.service.stream_log import MANIFEST, StreamLog, segment_name
from ams_ray.wire.log_framing import LogDamaged


@pytest.fixture(params=["directory", "memory"])
def store(request, tmp_path):
    """The same log on a local directory and on fsspec's in-memory store, which stands for an
    object store (no append, whole-object PUTs)."""
    url = str(tmp_path / "store") if request.param == "directory" else f"memory://ams-{uuid.uuid4().hex}/run"
    return CheckpointStore(url)


def test_segments_come_back_in_the_order_written_and_a_reopened_log_continues(store):
    log = StreamLog(store, "cam")
    assert log.append([(1, b"a"), (2, b"b")]) == 1 and log.append([(1, b"c")]) == 2
    again = StreamLog(store, "cam")
    contents = again.read()
    again.take_over(contents)
    assert contents.records == [(1, 1, b"a"), (1, 2, b"b"), (2, 1, b"c")] and contents.snapshot is None
    assert again.append([(2, b"d")]) == 3
    assert [r[2] for r in StreamLog(store, "cam").read().records] == [b"a", b"b", b"c", b"d"]


def test_a_torn_newest_segment_restores_to_its_last_whole_record_at_every_cut(store):
    log = StreamLog(store, "cam")
    log.append([(1, b"older")])
    log.append([(1, b"x" * 5), (2, b"y" * 9), (1, b"z")])
    whole = store.get("cam", segment_name(2))
    for cut in range(len(whole)):
        store.put("cam", segment_name(2), whole[:cut])
        reopened = StreamLog(store, "cam")
        contents = reopened.read()
        reopened.take_over(contents)
        payloads = [r[2] for r in contents.records]
        assert payloads[0] == b"older" and payloads[1:] == [b"x" * 5, b"y" * 9, b"z"][:len(payloads) - 1], cut
        expected = sum(cut >= end for end in (20, 44, 60))  # record ends: 15-byte prefix + payload each
        assert len(payloads) - 1 == expected, cut
        reopened.append([(2, b"after")])  # the cut segment was repaired, so a later one may follow it
        assert [r[2] for r in StreamLog(store, "cam").read().records][-1] == b"after"
        store.remove("cam", [segment_name(3)])


def test_a_flipped_bit_in_a_segment_is_refused_by_name(store):
    log = StreamLog(store, "cam-9")
    log.append([(1, b"chunk one")])
    log.append([(1, b"chunk two")])
    data = bytearray(store.get("cam-9", segment_name(1)))
    data[-2] ^= 0x10
    store.put("cam-9", segment_name(1), bytes(data))
    with pytest.raises(LogDamaged, match=r"segment seg-00000001\.log of stream cam-9 is damaged at byte 0"):
        StreamLog(store, "cam-9").read()


def test_commit_drops_old_segments_and_snapshots_and_a_crash_between_leaves_nothing_read(store):
    log = StreamLog(store, "cam")
    for n in range(5):
        log.append([(1, bytes([n]))])
    log.commit(3, (7, b"weights at packet 7"))
    assert sorted(store.listing("cam")) == [MANIFEST, "seg-00000003.log", "seg-00000004.log", "seg-00000005.log",
                                             "snapshot-00000007.ams"]
    contents = StreamLog(store, "cam").read()
    assert contents.snapshot == b"weights at packet 7" and [r[2] for r in contents.records] == [b"\x02", b"\x03", b"\x04"]
    store.put("cam", segment_name(1), b"left by a crash after the manifest was written")
    store.put("cam", "snapshot-00000002.ams", b"an older snapshot, also left")
    reader = StreamLog(store, "cam")
    contents = reader.read()
    assert [r[0] for r in contents.records] == [3, 4, 5] and "seg-00000001.log" in store.listing("cam")
    reader.take_over(contents)
    assert "seg-00000001.log" not in store.listing("cam") and "snapshot-00000002.ams" not in store.listing("cam")


def test_a_manifest_naming_a_missing_snapshot_is_refused(store):
    log = StreamLog(store, "cam")
    log.commit(1, (4, b"w"))
    store.remove("cam", ["snapshot-00000004.ams"])
    with pytest.raises(LogDamaged, match="names snapshot-00000004.ams, which is missing"):
        StreamLog(store, "cam").read()


def test_a_log_given_up_leaves_an_empty_log_that_takes_new_segments(store):
    log = StreamLog(store, "cam")
    log.append([(1, b"a")])
    log.append([(1, b"b")])
    store.put("cam", segment_name(1), b"garbage")
    with pytest.raises(LogDamaged):
        StreamLog(store, "cam").read()
    log = StreamLog(store, "cam")
    log.start_afresh()
    assert log.append([(2, b"new")]) == 3
    assert [r[2] for r in StreamLog(store, "cam").read().records] == [b"new"]
    assert sorted(store.listing("cam")) == [MANIFEST, "seg-00000003.log"]
