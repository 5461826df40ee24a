import pytest

from ams_ray.service.scheduling import ConcurrentPolicy, TakingTurns, make_policy


def test_round_robin_lets_one_trainer_per_device_train_in_arrival_order():
    policy = TakingTurns()
    assert policy.request("a", "gpu0")
    assert not policy.request("b", "gpu0")
    assert not policy.request("c", "gpu0")
    assert policy.request("d", "gpu1"), "another accelerator is independent"
    assert policy.release("a", "gpu0") == ["b"]
    assert policy.release("b", "gpu0") == ["c"]
    assert policy.release("c", "gpu0") == []
    assert policy.request("a", "gpu0")


def test_concurrent_never_waits_and_unknown_names_are_refused():
    assert all(ConcurrentPolicy().request(s, "gpu0") for s in "abc")
    assert make_policy("round_robin").name == "round_robin"
    with pytest.raises(ValueError, match="unknown scheduler 'fastest'"):
        make_policy("fastest")


def test_a_device_with_two_slots_trains_two_rounds_at_once_in_arrival_order():
    policy = TakingTurns()
    policy.set_slots("node:cpu", 2)
    assert policy.request("a", "node:cpu") and policy.request("b", "node:cpu")
    assert not policy.request("c", "node:cpu") and not policy.request("d", "node:cpu")
    assert policy.request("e", "gpu0"), "other accelerators keep one slot"
    assert not policy.request("f", "gpu0")
    assert policy.release("b", "node:cpu") == ["c"]
    assert policy.release("a", "node:cpu") == ["d"]
    with pytest.raises(ValueError, match="at least 1 training slot"):
        policy.set_slots("gpu1", 0)


def test_gain_turns_go_to_the_waiting_host_whose_round_is_worth_most():
    policy = make_policy("gain")
    assert policy.request("busy", "node:cpu", 1.0)
    assert not policy.request("cheap", "node:cpu", 2.0)
    assert not policy.request("valuable", "node:cpu", 30.0)
    assert not policy.request("also-cheap", "node:cpu", 2.0)
    assert policy.release("busy", "node:cpu") == ["valuable"]
    assert policy.release("valuable", "node:cpu") == ["cheap"], "equal priorities: who asked first"
    assert make_policy("fifo").name == "fifo" and make_policy("gain").name == "gain"
