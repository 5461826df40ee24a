"""EdgeStream: one per device. Plays its video on a paced clock, runs the ONNX student,
uploads chunks to its trainer and applies the packets that come back. Never imports torch."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import ray

from actors.metrics import EdgeMetrics
from ams_ray.config import AmsConfig
from ams_ray.edge_client import EdgeClient
from ams_ray.edge_runtime import EdgeModel
from ams_ray.metrics import MiouTrace, frame_miou
from ams_ray.process_memory import own_memory_mb
from ams_ray.teachers import TeacherPool
from ams_ray.video import VideoReader


MIOU_WINDOW_S = 10.0  # video seconds behind the exported mIoU gauges


@ray.remote(max_restarts=0)
class EdgeStream:
    def __init__(self, stream_id: str, video_path: str, teacher_spec: str, config_json: str, speed: float,
                 max_duration_s: float | None, trainer, bundle) -> None:
        self.config = AmsConfig.model_validate_json(config_json)
        self.stream_id, self.video_path, self.speed = stream_id, video_path, speed
        self.max_duration_s = max_duration_s
        self.trainer = trainer
        self.client = EdgeClient(stream_id, bundle, self.config.sampling.initial_rate_fps,
                                 self.config.training.send_period_s, self.config.video.chunk_crf)
        self.pretrained = EdgeModel(bundle)  # never updated: the baseline on the very same frames
        self.labels = TeacherPool(teacher_spec)  # evaluation needs cached labels (oracle / labels:DIR)
        self.pretrained_trace = MiouTrace()
        self.metrics = EdgeMetrics(stream_id)
        self._frames_reported = 0
        self.staleness_s: list[float] = []
        self.frames_done = 0
        self.max_lag_s = 0.0
        self.upload_refs: list = []

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def set_sampling_rate(self, rate_fps: float) -> None:
        self.client.set_sampling_rate(rate_fps)

    def deliver(self, packet: bytes, due_wall: float) -> None:
        applied = self.client.apply_packet(packet)
        staleness = time.time() - due_wall
        self.metrics.packet(len(packet), applied, staleness)
        if applied:
            self.staleness_s.append(staleness)

    def progress(self) -> int:
        return self.frames_done

    async def run(self) -> dict:
        reader = VideoReader(self.video_path, self.config.video.height, self.config.video.width)
        fps = reader.fps
        last = int(self.max_duration_s * fps) if self.max_duration_s else None
        start = time.time()
        for index, frame in enumerate(reader):
            if last is not None and index >= last:
                break
            video_s = index / fps
            lag = time.time() - (start + video_s / self.speed)
            if lag < 0:
                await asyncio.sleep(-lag)
            self.max_lag_s = max(self.max_lag_s, lag)
            chunk = self.client.observe(index, video_s, frame)
            if chunk is not None:
                self.upload_refs.append(self.trainer.receive_chunk.remote(chunk.to_bytes(), time.time()))
                self.metrics.uploaded(len(chunk.frame_indices), chunk.num_bytes)
            if index % self.config.eval_every == 0:
                self._evaluate(index, video_s, frame)
            self.frames_done = index + 1
            await asyncio.sleep(0)  # let packets and rate changes in between frames
        if self.frames_done > self._frames_reported:
            self.metrics.frames_played.inc(self.frames_done - self._frames_reported)
            self._frames_reported = self.frames_done
        errors = []
        for ref in self.upload_refs:  # surface a trainer failure instead of hiding it
            try:
                await ref
            except Exception as exc:  # noqa: BLE001 - reported per stream, never fatal to the others
                self.metrics.errors.count("upload_failed")
                errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                break
        duration = self.frames_done / fps
        trace = self.client.trace
        return {
            "stream_id": self.stream_id, "frames": self.frames_done, "duration_s": duration,
            "miou": trace.mean, "pretrained_miou": self.pretrained_trace.mean,
            "uplink_bytes": self.client.bandwidth.uplink_bytes, "downlink_bytes": self.client.bandwidth.downlink_bytes,
            "uplink_kbps": self.client.bandwidth.uplink_kbps(duration),
            "downlink_kbps": self.client.bandwidth.downlink_kbps(duration),
            "updates_applied": self.client.updates_applied, "rejected_packets": self.client.rejected_packets,
            "staleness_s": self.staleness_s, "max_lag_s": self.max_lag_s, "times_s": trace.times_s,
            "miou_trace": trace.values, "errors": errors, "node_id": ray.get_runtime_context().get_node_id(),
            "torch_loaded": "torch" in sys.modules,  # must stay False: torch costs ~430 MB per process
            "memory_mb": own_memory_mb(),
        }

    def _evaluate(self, index: int, video_s: float, frame: np.ndarray) -> None:
        """Score the live model and the pretrained one on the teacher's labels of this frame."""
        truth = self.labels.label_many([(self.video_path, index, frame)])[0]
        self.client.evaluate(video_s, frame, truth)
        baseline = self.pretrained.predict(frame[None])[0]
        self.pretrained_trace.add(video_s, frame_miou(truth, baseline, self.client.model.num_classes))
        played = index + 1
        self.metrics.evaluated(played - self._frames_reported, self.client.trace.recent_mean(MIOU_WINDOW_S),
                               self.pretrained_trace.recent_mean(MIOU_WINDOW_S), self.client.sampling_rate_fps)
        self._frames_reported = played
