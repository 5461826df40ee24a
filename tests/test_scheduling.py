import pytest

from ams_ray.scheduling import ConcurrentPolicy, RoundRobinPolicy, make_policy


def test_round_robin_lets_one_trainer_per_device_train_in_arrival_order():
    policy = RoundRobinPolicy()
    assert policy.request("a", "gpu0")
    assert not policy.request("b", "gpu0")
    assert not policy.request("c", "gpu0")
    assert policy.request("d", "gpu1"), "another device is independent"
    assert policy.release("a", "gpu0") == ["b"]
    assert policy.release("b", "gpu0") == ["c"]
    assert policy.release("c", "gpu0") == []
    assert policy.request("a", "gpu0")


def test_concurrent_never_waits_and_unknown_names_are_refused():
    assert all(ConcurrentPolicy().request(s, "gpu0") for s in "abc")
    assert make_policy("round_robin").name == "round_robin"
    with pytest.raises(ValueError, match="unknown scheduler 'fastest'"):
        make_policy("fastest")
