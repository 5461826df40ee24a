"""The coordinator: registers streams and their devices, grants training turns by policy."""

from __future__ import annotations

import asyncio

import ray

from ams_ray.scheduling import make_policy


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, scheduler: str) -> None:
        self.policy = make_policy(scheduler)
        self.streams: dict[str, str] = {}  # stream -> device
        self._grants: dict[str, asyncio.Event] = {}

    def register(self, stream_id: str, device: str, slots: int = 1) -> None:
        """`slots`: rounds the device can run at once (1 per GPU; a CPU node's core count)."""
        self.streams[stream_id] = device
        self.policy.set_slots(device, slots)

    async def acquire(self, stream_id: str, priority: float = 0.0) -> None:
        """Returns when the stream may train on its device."""
        device = self.streams[stream_id]
        if self.policy.request(stream_id, device, priority):
            return
        event = self._grants.setdefault(stream_id, asyncio.Event())
        await event.wait()
        event.clear()

    def release(self, stream_id: str) -> None:
        for granted in self.policy.release(stream_id, self.streams[stream_id]):
            self._grants.setdefault(granted, asyncio.Event()).set()

    def summary(self) -> dict:
        return {"scheduler": self.policy.name, "devices": self.streams}
