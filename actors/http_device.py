"""HttpDeviceActor: one emulated device that reaches the service over HTTP, as a camera would.

It runs the standalone client (`ams_ray.device.http_device.HttpDevice`) inside a Ray actor only so that
`multi_client.py --transport http` can start, place and collect many of them; nothing of
the data path goes through Ray. Its report has the fields of `EmulatedDevice`'s, plus `http`.
Its methods name the stream, as an `EdgeHost`'s do, so the fleet drives both alike; here it
is always the one device this actor plays.
"""

from __future__ import annotations

import sys

import ray

from ams_ray.config import AmsConfig
from ams_ray.data.datasets import SyntheticSpec, VideoFile
from ams_ray.data.label_lookup import CachedLabelTeacher, SyntheticOracle
from ams_ray.data.video import VideoReader
from ams_ray.device.http_device import HttpDevice
from ams_ray.fleet.process_memory import own_memory_mb


@ray.remote(max_restarts=0, max_concurrency=2)  # `progress` answers while `run` plays
class HttpDeviceActor:
    def __init__(self, stream_id: str, video: SyntheticSpec | VideoFile, config_json: str, speed: float,
                 max_duration_s: float | None, send_phase_s: float, url: str, token: str, call_timeout_s: float,
                 cache_dir: str | None = None) -> None:
        self.stream_id, self.video, self.speed, self.max_duration_s = stream_id, video, speed, max_duration_s
        self.send_phase_s = send_phase_s
        self.url, self.token, self.call_timeout_s = url, token, call_timeout_s
        self.config = AmsConfig.model_validate_json(config_json)
        self.cache_dir = cache_dir
        self.device: HttpDevice | None = None

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def prepare(self, stream_id: str, bundle=None) -> float:
        """Make the video playable on this node (the model comes over HTTP, at `run`)."""
        from pathlib import Path

        if isinstance(self.video, SyntheticSpec):
            path = self.video.materialize(Path(self.cache_dir) if self.cache_dir else None, labels=False).path
            open_video, truth = (lambda h, w: VideoReader(path, h, w)), SyntheticOracle(self.video)
        else:
            data, name = self.video.data, self.video.name
            open_video = lambda h, w: VideoReader(name, h, w, data=data)  # noqa: E731
            truth = CachedLabelTeacher(self.video.truth) if self.video.truth else None
        self.device = HttpDevice(self.url, self.stream_id, self.token, open_video, truth, self.speed,
                             self.max_duration_s, give_up_after_s=self.call_timeout_s,
                             send_phase_s=self.send_phase_s)
        return 0.0

    def progress(self, stream_ids: list[str]) -> dict[str, int]:
        return {sid: self.device.frames_played if self.device else 0 for sid in stream_ids}

    def run(self, stream_id: str) -> dict:
        report = self.device.run()
        if report["failure"]:
            raise RuntimeError(report["failure"])
        nan = float("nan")
        return {**report, "stream_id": self.stream_id,
                "video": getattr(self.video, "name", None) or self.video.key,
                "miou": report["miou"] if report["miou"] is not None else nan,
                "pretrained_miou": report["pretrained_miou"] if report["pretrained_miou"] is not None else nan,
                "upload_errors": [], "node_id": ray.get_runtime_context().get_node_id(),
                "torch_loaded": "torch" in sys.modules, "memory_mb": own_memory_mb(), "devices_in_process": 1}
