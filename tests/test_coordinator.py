"""Training turns on a real Ray coordinator when trainer processes die (see ams_ray.service.turns)."""

import time

import pytest
import ray

from actors.coordinator import Coordinator


@ray.remote(num_cpus=0)
class Trainer:
    """Stands in for a TrainerHost process: registers, then asks for turns."""

    def __init__(self, coordinator, stream_id: str, incarnation: str) -> None:
        self.coordinator, self.stream_id, self.incarnation = coordinator, stream_id, incarnation
        ray.get(coordinator.register.remote(stream_id, "node:gpu0", 1, incarnation))

    def ready(self) -> None:
        """Returns once the constructor (and its registration) has run."""

    def take_turn(self) -> bool:
        return ray.get(self.coordinator.acquire.remote(self.stream_id, self.incarnation))


def _queued(coordinator, stream_id: str) -> None:
    """Wait (bounded) until the coordinator has `stream_id` waiting, so queue order is known."""
    for _ in range(300):
        if stream_id in ray.get(coordinator.summary.remote())["waiting"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"{stream_id} never queued")


def _granted(ref, timeout_s: float = 30.0) -> bool:
    ready, _ = ray.wait([ref], timeout=timeout_s)
    return bool(ready) and ray.get(ready[0])


@pytest.fixture
def coordinator(ray_local):
    actor = Coordinator.remote("round_robin", 600.0)
    yield actor
    ray.kill(actor)


def test_a_trainer_killed_holding_a_turn_hands_it_on_when_it_restarts(coordinator):
    a, b, c = (Trainer.remote(coordinator, s, f"{s}-1") for s in "abc")
    assert ray.get(a.take_turn.remote(), timeout=30)
    waiting_b = b.take_turn.remote()
    _queued(coordinator, "b")
    waiting_c = c.take_turn.remote()
    _queued(coordinator, "c")
    ray.kill(a)
    restarted = Trainer.remote(coordinator, "a", "a-2")  # Ray's restart of a: a new process, a new incarnation
    ray.get(restarted.ready.remote(), timeout=30)
    assert _granted(waiting_b)
    assert not ray.wait([waiting_c], timeout=1.0)[0], "c still waits for b, which is alive and training"
    ray.get(coordinator.release.remote("b", "b-1"))
    assert _granted(waiting_c)


def test_a_trainer_killed_while_queued_loses_its_place(coordinator):
    a, b, c = (Trainer.remote(coordinator, s, f"{s}-1") for s in "abc")
    assert ray.get(a.take_turn.remote(), timeout=30)
    b.take_turn.remote()
    _queued(coordinator, "b")
    waiting_c = c.take_turn.remote()
    _queued(coordinator, "c")
    ray.kill(b)
    restarted = Trainer.remote(coordinator, "b", "b-2")
    ray.get(restarted.ready.remote(), timeout=30)
    ray.get(coordinator.release.remote("a", "a-1"))
    assert _granted(waiting_c), "the dead b no longer stands between a and c"
    assert ray.get(coordinator.summary.remote())["reclaimed_turns"] == 0


def test_a_turn_whose_holder_never_returns_lapses(ray_local):
    coordinator = Coordinator.remote("round_robin", 2.0)
    try:
        a, b = (Trainer.remote(coordinator, s, f"{s}-1") for s in "ab")
        assert ray.get(a.take_turn.remote(), timeout=30)
        waiting_b = b.take_turn.remote()
        ray.kill(a)  # no restart: only the lease can free the turn
        assert _granted(waiting_b)
        assert ray.get(coordinator.summary.remote())["reclaimed_turns"] == 1
    finally:
        ray.kill(coordinator)
