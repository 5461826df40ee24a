"""The service through faults, with real HTTP devices (`benchmarks/service_faults.py` run
small): two ingress replicas over a pool grown from 2 to 3 hosts, then one host killed for
good, one ingress replica killed, and the stream directory killed and restarted by Ray."""

import json

import pytest

from benchmarks import service_faults
from tests.ray_session import shutdown_ray


@pytest.fixture
def own_cluster():
    """The benchmark starts and stops its own loopback cluster."""
    shutdown_ray()
    yield
    shutdown_ray()


def test_streams_survive_a_pool_change_a_dead_host_a_dead_ingress_and_a_directory_restart(own_cluster, tmp_path):
    code = service_faults.main(["--devices", "3", "--duration", "100", "--speed", "2", "--videos", "1",
                                "--fault", "add-host@10", "--fault", "kill-host@22", "--fault", "kill-ingress@30",
                                "--fault", "restart-directory@36", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    grow, kill_host, kill_ingress, restart = summary["events"]
    assert code == 0 and summary["completed"] == 3 and summary["failures"] == {}  # no device failed, ever
    # Growing the pool moved only the streams rendezvous hashing gave the new host, by drain: nothing lost.
    assert grow["streams_affected"] <= 3 and grow["updates_lost"] == 0
    assert grow["streams_affected"] == 0 or grow["resumed_s"] is not None
    # The killed host's devices went on applying updates from another host.
    assert kill_host["streams_affected"] >= 1 and kill_host["resumed_s"] is not None
    assert kill_ingress["updates_lost"] == 0 and restart["updates_lost"] == 0
    assert restart["streams_updated_after"] == 3  # every stream carried on after the directory came back
    # No stream open on two hosts, and the dead host's share was re-placed on the survivors.
    held = [sid for streams in summary["held_at_end"].values() for sid in streams]
    assert sorted(held) == sorted(set(held)) and set(held) <= {"cam-00", "cam-01", "cam-02"}
    assert len(summary["hosts_at_end"]) == 3  # the pool's floor (3 after the add) was restored
    assert (tmp_path / "service_faults.png").stat().st_size > 0
