import random

import pytest

from ams_ray.service.stream_placement import moves, owner, place

STREAMS = [f"cam-{i:04d}" for i in range(2000)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_adding_a_host_moves_about_one_in_n_plus_one_streams_all_to_it(n):
    before = [f"trainer-host-{k}" for k in range(n)]
    after = before + [f"trainer-host-{n}"]
    moved = moves(STREAMS, before, after)
    assert all(new == after[-1] for _, new in moved.values())
    assert abs(len(moved) / len(STREAMS) - 1 / (n + 1)) < 0.04


def test_losing_a_host_moves_only_its_streams_spread_over_the_survivors():
    hosts = [f"trainer-host-{k}" for k in range(4)]
    before = place(STREAMS, hosts)
    moved = moves(STREAMS, hosts, hosts[:1] + hosts[2:])
    assert set(moved) == {s for s, h in before.items() if h == hosts[1]}
    landed = [new for _, new in moved.values()]
    assert {landed.count(h) for h in hosts[:1] + hosts[2:]} != {0} and min(landed.count(h) for h in hosts[2:]) > 100


def test_placement_depends_on_the_set_of_hosts_not_its_order():
    hosts = [f"h{k}" for k in range(5)]
    shuffled = hosts[:]
    random.Random(3).shuffle(shuffled)
    assert place(STREAMS[:200], hosts) == place(STREAMS[:200], shuffled)


def test_streams_spread_evenly():
    counts = list(__import__("collections").Counter(place(STREAMS, ["a", "b", "c", "d"]).values()).values())
    assert max(counts) < 1.15 * len(STREAMS) / 4


def test_no_host_is_a_clear_error():
    with pytest.raises(ValueError, match="no live trainer host"):
        owner("cam-1", [])
