"""Fencing: a host that lost a stream's lease cannot write its log, so two hosts that both
believe they hold a stream never fork it."""

import uuid

import pytest

from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.service.stream_lease import LeaseLost, current_holdings, grant, read_lease
from ams_ray.service.stream_log import StreamLog
from ams_ray.wire.stream_records import PACKET


@pytest.fixture(params=["directory", "memory"])
def store(request, tmp_path):
    url = str(tmp_path / "store") if request.param == "directory" else f"memory://ams-{uuid.uuid4().hex}/run"
    return CheckpointStore(url)


def _packet(sequence: int) -> list[tuple[int, bytes]]:
    return [(PACKET, f"packet {sequence}".encode())]


def test_each_grant_is_one_epoch_higher_and_names_its_holder(store):
    assert read_lease(store, "cam").epoch == 0
    assert grant(store, "cam", "trainer-host-0").epoch == 1
    assert grant(store, "cam", "trainer-host-1") == read_lease(store, "cam")
    assert read_lease(store, "cam").epoch == 2 and read_lease(store, "cam").holder == "trainer-host-1"


def test_the_older_epoch_cannot_write_and_the_packet_line_stays_one(store):
    old_host = StreamLog(store, "cam", grant(store, "cam", "trainer-host-0").epoch)
    old_host.take_over(old_host.read())
    old_host.append(_packet(1))
    # The directory moves the stream while the old host is paused; the new host takes over the log.
    new_host = StreamLog(store, "cam", grant(store, "cam", "trainer-host-1").epoch)
    new_host.take_over(new_host.read())
    new_host.append(_packet(2))
    with pytest.raises(LeaseLost, match="trainer-host-1 at epoch 2.*epoch 1"):
        old_host.append(_packet(2))  # the old host wakes and writes its own packet 2
    with pytest.raises(LeaseLost):
        old_host.commit(old_host.next_segment)  # nor may it drop segments the new host needs
    new_host.append(_packet(3))
    assert [payload for _, _, payload in StreamLog(store, "cam").read().records] == [
        b"packet 1", b"packet 2", b"packet 3"]


def test_a_host_granted_an_epoch_that_moved_on_cannot_even_take_the_log_over(store):
    stale = StreamLog(store, "cam", grant(store, "cam", "trainer-host-0").epoch)
    grant(store, "cam", "trainer-host-1")
    with pytest.raises(LeaseLost):
        stale.take_over(stale.read())


def test_a_restarted_directory_adopts_only_the_copies_whose_lease_is_still_their_holders(store):
    """Host 0 kept cam-a after its lease moved to host 1 (a move cut short by the directory's
    restart): adopting that copy would send every call for cam-a to a host that must refuse it."""
    grant(store, "cam-a", "trainer-host-0")
    grant(store, "cam-a", "trainer-host-1")
    grant(store, "cam-b", "trainer-host-0")
    held_by_0 = {"cam-a": 1, "cam-b": 1}
    assert current_holdings(store, "trainer-host-0", held_by_0) == {"cam-b": 1}
    assert current_holdings(store, "trainer-host-1", {"cam-a": 2}) == {"cam-a": 2}
    assert current_holdings(store, "trainer-host-1", {"cam-b": 1}) == {}  # the epoch matches, the holder does not
