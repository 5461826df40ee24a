"""The coordinator: grants training turns on shared accelerators, as leases (`ams_ray.service.turns`).

A holder (a trainer host, by its host id) registers with its incarnation (one id per
process) and asks for a turn before each training step; the answer is an awaited future. Waiters wake every second to take back lapsed leases, so a
turn held by a process that died and never came back is reclaimed without anyone calling.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ray

from ams_ray.service.turns import TurnBook

log = logging.getLogger(__name__)
REAP_EVERY_S = 1.0


def start_coordinator(name: str, scheduler: str, lease_s: float) -> ray.actor.ActorHandle:
    """A coordinator that trainer hosts find by `name` (`NAMESPACE/NAME` for a detached one, which
    outlives its creator, as the service's does; it is then reused if it exists). A host is given
    the name, not the handle: an actor handle among a restartable actor's constructor arguments
    lives in the object store, and a restart fails once it is gone (ray#53727)."""
    namespace, _, plain = name.rpartition("/")
    if not namespace:
        return Coordinator.options(name=name).remote(scheduler, lease_s)
    return Coordinator.options(name=plain, namespace=namespace, lifetime="detached", get_if_exists=True,
                               max_restarts=-1).remote(scheduler, lease_s)


def find_coordinator(name: str) -> ray.actor.ActorHandle:
    namespace, _, plain = name.rpartition("/")
    return ray.get_actor(plain, namespace=namespace or None)


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, scheduler: str, lease_s: float) -> None:
        self.book = TurnBook(scheduler, lease_s)
        self._waiting: dict[str, asyncio.Future] = {}

    def register(self, holder: str, accelerator: str, slots: int, incarnation: str) -> None:
        """`slots`: steps the accelerator can run at once (1 per GPU; a CPU node's core count)."""
        if not self.book.current(holder, incarnation):
            self._wake(holder, False)  # a replaced process's pending request ends now
        self._grant(self.book.register(holder, accelerator, slots, incarnation, time.monotonic()))

    async def acquire(self, holder: str, incarnation: str, priority: float = 0.0) -> bool:
        """True once the holder has a turn; False if this process has been replaced. `priority`:
        what its best waiting round is worth (the `gain` scheduler grants the highest first)."""
        granted = self.book.request(holder, incarnation, time.monotonic(), priority)
        if granted is not False:
            return bool(granted)
        future = asyncio.get_running_loop().create_future()
        self._waiting[holder] = future
        while not future.done():
            await asyncio.wait({future}, timeout=REAP_EVERY_S)
            self._grant(self.book.expire(time.monotonic()))
        return future.result()

    def release(self, holder: str, incarnation: str) -> None:
        """Ends a turn, or a wait the trainer gave up on."""
        if self.book.current(holder, incarnation):
            self._wake(holder, False)
        self._grant(self.book.release(holder, incarnation, time.monotonic()))

    def _grant(self, holders: list[str]) -> None:
        for holder in holders:
            if not self._wake(holder, True):
                log.info("turn granted to %s, which no longer waits; it lapses with its lease", holder)

    def _wake(self, holder: str, granted: bool) -> bool:
        future = self._waiting.pop(holder, None)
        if future is None or future.done():
            return False
        future.set_result(granted)
        return True

    def summary(self) -> dict:
        return {"scheduler": self.book.policy.name, "accelerators": dict(self.book.accelerators),
                "waiting": sorted(s for s, f in self._waiting.items() if not f.done()),
                "reclaimed_turns": self.book.reclaimed}
