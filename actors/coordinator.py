"""The coordinator: grants training turns on shared devices, as leases (`ams_ray.turns`).

A trainer registers with its incarnation (one id per process) and asks for a turn; the
answer is an awaited future. Waiters wake every second to take back lapsed leases, so a
turn held by a process that died and never came back is reclaimed without anyone calling.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ray

from ams_ray.turns import TurnBook

log = logging.getLogger(__name__)
REAP_EVERY_S = 1.0


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, scheduler: str, lease_s: float) -> None:
        self.book = TurnBook(scheduler, lease_s)
        self._waiting: dict[str, asyncio.Future] = {}

    def register(self, stream_id: str, device: str, slots: int, incarnation: str) -> None:
        """`slots`: rounds the device can run at once (1 per GPU; a CPU node's core count)."""
        if not self.book.current(stream_id, incarnation):
            self._wake(stream_id, False)  # a replaced process's pending request ends now
        self._grant(self.book.register(stream_id, device, slots, incarnation, time.monotonic()))

    async def acquire(self, stream_id: str, incarnation: str) -> bool:
        """True once the stream holds a turn; False if this process has been replaced."""
        granted = self.book.request(stream_id, incarnation, time.monotonic())
        if granted is not False:
            return bool(granted)
        future = asyncio.get_running_loop().create_future()
        self._waiting[stream_id] = future
        while not future.done():
            await asyncio.wait({future}, timeout=REAP_EVERY_S)
            self._grant(self.book.expire(time.monotonic()))
        return future.result()

    def release(self, stream_id: str, incarnation: str) -> None:
        """Ends a turn, or a wait the trainer gave up on."""
        if self.book.current(stream_id, incarnation):
            self._wake(stream_id, False)
        self._grant(self.book.release(stream_id, incarnation, time.monotonic()))

    def _grant(self, streams: list[str]) -> None:
        for stream_id in streams:
            if not self._wake(stream_id, True):
                log.info("turn granted to %s, which no longer waits; it lapses with its lease", stream_id)

    def _wake(self, stream_id: str, granted: bool) -> bool:
        future = self._waiting.pop(stream_id, None)
        if future is None or future.done():
            return False
        future.set_result(granted)
        return True

    def summary(self) -> dict:
        return {"scheduler": self.book.policy.name, "devices": dict(self.book.devices),
                "waiting": sorted(s for s, f in self._waiting.items() if not f.done()),
                "reclaimed_turns": self.book.reclaimed}
