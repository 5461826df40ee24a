"""EdgeHost: K emulated devices in one process, as a test rig (or a gateway box) holds them.

Why pooled: an emulated device measured 15-18 MB in a pooled process (its two ONNX sessions
and decoder about 4 MB, the rest its traces and buffers), a process of its own about 95 MB
more, so at 128 streams one process per device held ~12 of 16 GiB and the scaling study
measured the emulator instead of the server. Here each device
(`EmulatedDevice`) keeps its own paced clock, model, uploads and long-polls as tasks on this
actor's event loop; what a device does and reports is unchanged, and its report says how
many devices shared the process (`devices_in_process`), so memory is counted per device.

Every method names the stream it is for: the fleet drives a pooled host and a device of its
own (`HttpDeviceActor`) alike. A failure of one device (a bad video, say) fails its stream
alone; the process dying (a `kill-edge` fault) takes its K devices with it, as a gateway's
power cut would.
"""

from __future__ import annotations

import time

import ray

from actors.emulated_device import EmulatedDevice


@ray.remote(max_restarts=0)
class EdgeHost:
    def __init__(self, devices: dict[str, dict]) -> None:
        """`devices`: stream id -> `EmulatedDevice`'s other arguments, by name."""
        self.devices = {sid: EmulatedDevice(stream_id=sid, **arguments) for sid, arguments in devices.items()}
        self.cpu_at_start: float | None = None  # process CPU seconds when the first device started playing

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def prepare(self, stream_id: str, bundle) -> float:
        return self.devices[stream_id].prepare(bundle)

    def progress(self, stream_ids: list[str]) -> dict[str, int]:
        """Frames played by each of these devices: one call for the process, not one per device
        (at 128 devices a call each per second was most of what a busy event loop answered)."""
        return {sid: self.devices[sid].progress() for sid in stream_ids}

    async def run(self, stream_id: str) -> dict:
        """Play the device to its end; its report adds this process's CPU seconds since the
        first device started, as an equal share per device (what emulating it cost)."""
        if self.cpu_at_start is None:
            self.cpu_at_start = time.process_time()
        report = await self.devices[stream_id].run()
        share = (time.process_time() - self.cpu_at_start) / len(self.devices)
        return {**report, "devices_in_process": len(self.devices), "edge_cpu_s": share}

    def deliver(self, stream_id: str, packet: bytes, sent_wall: float) -> bool:
        """Hand a device a packet as if polled (a probe's way in)."""
        return self.devices[stream_id].deliver(packet, sent_wall)
