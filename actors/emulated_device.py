"""EmulatedDevice: one emulated camera. Plays its video on a paced clock, runs the ONNX
student, uploads chunks to its trainer and long-polls it for packets, as an HTTP device
does. Never imports torch. An `EdgeHost` actor plays several of them on its event loop.

An upload is answered once the trainer has the chunk (not once it is labelled), and a
packet is taken from the stream's outbox as soon as it is made, so the downlink never waits
on the uplink. A poll whose reply is lost is simply asked again; the trainer hands the same
packet out again (and counts it). The video arrives as data (`SyntheticSpec`, rendered on
this node, or a `VideoFile`'s bytes), and exact labels for scoring come from where the edge
runs: a synthetic video's are re-rendered from its seed. A failed or slow call is counted
and the device carries on with the model it has, as a real camera would while its server
restarts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import ray
from ray.exceptions import RayError

from actors.teacher_client import label_with_retry
from actors.telemetry import EdgeMetrics
from ams_ray.accuracy import MiouTrace, frame_miou
from ams_ray.config import AmsConfig
from ams_ray.data.datasets import SyntheticSpec, VideoFile
from ams_ray.data.label_lookup import CachedLabelTeacher, SyntheticOracle, Teacher
from ams_ray.data.video import VideoReader
from ams_ray.device.client import DeviceClient
from ams_ray.fleet.process_memory import own_memory_mb
from ams_ray.teach.label_queue import ScoringShed
from ams_ray.wire.messages import SampleChunk

MIOU_WINDOW_S = 10.0  # video seconds behind the exported mIoU gauges
POLL_WAIT_S = 20.0  # one long-poll for a packet
RETRY_AFTER_S = 1.0  # after a failed poll


class EmulatedDevice:
    def __init__(self, stream_id: str, video: SyntheticSpec | VideoFile, config_json: str, speed: float,
                 max_duration_s: float | None, send_phase_s: float, trainer, call_timeout_s: float,
                 cache_dir: str | None = None, teacher=None, label_key: str | None = None,
                 teacher_eval_every: int = 4, drain_s: float = 120.0) -> None:
        """`trainer`: the TrainerHost holding this stream. The model arrives with `prepare`,
        so edge processes start while the trainers still import torch. `teacher`: the shared
        teacher's handle; every `teacher_eval_every`-th scored frame is also scored against its
        labels (AMS's own protocol), a sample that keeps this extra load on the teacher small:
        at most one is out at a time, so a saturated teacher never gets a backlog of scoring
        work from this device (a sample due meanwhile is skipped and counted; one the teacher
        sheds is counted too). `drain_s`: after its last upload, how long the device waits at
        most for the packets of rounds its chunks made due."""
        self.config = AmsConfig.model_validate_json(config_json)
        self.stream_id, self.video, self.speed = stream_id, video, speed
        self.max_duration_s, self.call_timeout_s, self.drain_s = max_duration_s, call_timeout_s, drain_s
        self.send_phase_s = send_phase_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.trainer = trainer
        self.client: DeviceClient | None = None
        self.truth: Teacher | None = (SyntheticOracle(video) if isinstance(video, SyntheticSpec)
                                      else CachedLabelTeacher(video.truth) if video.truth else None)
        self.teacher_vs_truth = MiouTrace()  # the teacher's labels of the same frames against the truth
        self.teacher, self.label_key, self.teacher_eval_every = teacher, label_key, teacher_eval_every
        self.teacher_seconds = 0.0  # this stream's share of the teacher's batch time
        self._evaluations = 0
        self._teacher_scores: list[asyncio.Task] = []
        self.teacher_evaluations_skipped = 0  # a sample due while the previous one was still out
        self.teacher_evaluations_shed = 0  # a sample the teacher dropped to serve training first
        self.metrics = EdgeMetrics(stream_id)
        self.reader: VideoReader | None = None
        self._frames_reported = 0
        self.staleness_s: list[float] = []
        self.applied_wall: list[float] = []
        self.upload_errors: list[str] = []
        self.upload_timeouts = 0
        self.poll_failures = 0
        self.packets_missed = 0  # numbers skipped between packets received: superseded before they came
        self.shed_chunks = 0  # uploads the trainer did not label, its backlog for this stream being full
        self.sent_wall: dict[int, float] = {}  # chunk sequence -> when it was uploaded
        self.after = 0  # newest packet number received (applied or refused)
        self.frames_done = 0
        self.max_lag_s = 0.0
        self._uploads: list[asyncio.Task] = []

    def prepare(self, bundle) -> float:
        """Load the model and make the video playable on this node (render a synthetic one
        into this node's cache); returns the seconds it took. Raises VideoError naming a bad file."""
        began = time.perf_counter()
        self.client = DeviceClient(self.stream_id, bundle, self.config.sampling.initial_rate_fps,
                                 self.config.training.send_period_s, self.config.video.chunk_crf,
                                 send_phase_s=self.send_phase_s, baseline=True)
        h, w = self.config.video.height, self.config.video.width
        if isinstance(self.video, SyntheticSpec):
            self.reader = VideoReader(self.video.materialize(self.cache_dir, labels=False).path, h, w)
        else:
            self.reader = VideoReader(self.video.name, h, w, data=self.video.data)
        return time.perf_counter() - began

    def progress(self) -> int:
        return self.frames_done

    async def run(self) -> dict:
        if self.reader is None or self.client is None:
            raise RuntimeError(f"{self.stream_id}: run() before prepare()")
        polling = asyncio.ensure_future(self._poll_packets())
        try:
            fps = await self._play()
            await asyncio.gather(*self._uploads, *self._teacher_scores)  # each bounded by its own timeout
            await self._drain()
        finally:
            polling.cancel()
        return self._report(fps)

    async def _play(self) -> float:
        """The video on its paced clock: the model on every frame, chunks up as they close."""
        fps = self.reader.fps
        last = int(self.max_duration_s * fps) if self.max_duration_s else None
        start = time.time()
        for index, frame in enumerate(self.reader):
            if last is not None and index >= last:
                break
            video_s = index / fps
            lag = time.time() - (start + video_s / self.speed)
            if lag < 0:
                await asyncio.sleep(-lag)
            self.max_lag_s = max(self.max_lag_s, lag)
            chunk = self.client.observe(index, video_s, frame)
            if chunk is not None:
                self._uploads.append(asyncio.ensure_future(self._upload(chunk)))
            if index % self.config.eval_every == 0 and self.truth is not None:
                self._evaluate(index, video_s, frame)
            self.frames_done = index + 1
            await asyncio.sleep(0)  # let replies in between frames
        if self.frames_done > self._frames_reported:
            self.metrics.frames_played.inc(self.frames_done - self._frames_reported)
            self._frames_reported = self.frames_done
        return fps

    async def _upload(self, chunk: SampleChunk) -> None:
        """Send one chunk; the reply (once the trainer holds it) sets the sampling rate."""
        data = chunk.to_bytes()
        self.metrics.uploaded(len(chunk.frame_indices), len(data))
        self.sent_wall[chunk.sequence] = time.time()
        try:
            outcome, rate = await asyncio.wait_for(self.trainer.submit_chunk.remote(self.stream_id, data),
                                                   self.call_timeout_s)
        except (RayError, asyncio.TimeoutError) as exc:
            kind = "upload_timeout" if isinstance(exc, asyncio.TimeoutError) else "upload_failed"
            self.upload_timeouts += kind == "upload_timeout"
            self.metrics.errors.count(kind)
            self.upload_errors.append(f"chunk {chunk.sequence}: {kind}: {type(exc).__name__}")
            return
        if outcome == "shed":
            self.shed_chunks += 1
        self.client.set_sampling_rate(rate)

    async def _poll_packets(self) -> None:
        """Long-poll the trainer for the next packet and apply it, for as long as the device runs.
        The poll acknowledges the packet before it (the trainer logs it then)."""
        while True:
            try:
                reply = await asyncio.wait_for(
                    self.trainer.next_packet.remote(self.stream_id, self.after, self.client.model.version,
                                                    POLL_WAIT_S), POLL_WAIT_S + self.call_timeout_s)
            except (RayError, asyncio.TimeoutError) as exc:
                self.poll_failures += 1
                self.metrics.errors.count("poll_timeout" if isinstance(exc, asyncio.TimeoutError) else "poll_failed")
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            if reply is None:
                continue
            sequence, packet, due_chunk = reply
            if sequence > self.after + 1 and self.after > 0:
                self.packets_missed += sequence - self.after - 1
                self.metrics.errors.count("packet_superseded", sequence - self.after - 1)
            self.after = max(self.after, sequence)
            self.deliver(packet, self.sent_wall.get(due_chunk, time.time()))

    async def _drain(self) -> None:
        """After the last upload: wait (at most `drain_s`) until the trainer has labelled and
        trained everything this device sent and the packets it made have arrived."""
        deadline = time.time() + self.drain_s
        while time.time() < deadline:
            try:
                status = await asyncio.wait_for(self.trainer.stream_status.remote(self.stream_id),
                                                max(1.0, min(self.call_timeout_s, deadline - time.time())))
            except (RayError, asyncio.TimeoutError):
                status = None  # a trainer restarting (Ray brings it back with the stream's checkpoint): ask again
            if status is not None and not status["pending"] and self.after >= status["packet_sequence"]:
                return
            await asyncio.sleep(RETRY_AFTER_S)

    def deliver(self, packet: bytes, sent_wall: float) -> bool:
        """Apply an update packet (polled, or pushed by a probe); a bad one is refused and
        counted, and the device keeps its model. Staleness runs from `sent_wall`, the upload
        that made the round due."""
        applied = self.client.apply_packet(packet)
        now = time.time()
        self.metrics.packet(len(packet), applied, now - sent_wall)
        if applied:
            self.staleness_s.append(now - sent_wall)
            self.applied_wall.append(now)
        return applied

    def _evaluate(self, index: int, video_s: float, frame: np.ndarray) -> None:
        """Score the live model and the pretrained one on this frame's exact labels."""
        truth = self.truth.label(frame[None], [index])[0]
        prediction = self.client.evaluate(video_s, frame, truth)
        if self.teacher is not None and self._evaluations % self.teacher_eval_every == 0:
            if self._teacher_scores and not self._teacher_scores[-1].done():
                self.teacher_evaluations_skipped += 1  # never queue scoring work behind a busy teacher
            else:
                self._teacher_scores.append(asyncio.ensure_future(
                    self._score_against_teacher(index, video_s, frame, prediction, truth)))
        self._evaluations += 1
        played = index + 1
        self.metrics.evaluated(played - self._frames_reported, self.client.trace.recent_mean(MIOU_WINDOW_S),
                               self.client.baseline_trace.recent_mean(MIOU_WINDOW_S), self.client.sampling_rate_fps)
        self._frames_reported = played

    async def _score_against_teacher(self, index: int, video_s: float, frame: np.ndarray, prediction: np.ndarray,
                                     truth: np.ndarray) -> None:
        """Not awaited by the play loop: the reply scores the prediction made when the frame played."""
        (reply,) = await label_with_retry(self.teacher, [(self.label_key, index, frame)], self.call_timeout_s,
                                          purpose="scoring")
        if isinstance(reply, ScoringShed):
            self.teacher_evaluations_shed += 1
            return
        if isinstance(reply, Exception):
            self.metrics.errors.count("teacher_eval_failed")
            return
        labels, batch, seconds = reply
        self.teacher_seconds += seconds / batch
        self.client.score_against_teacher(video_s, prediction, labels)
        self.teacher_vs_truth.add(video_s, frame_miou(truth, labels, self.client.model.num_classes))

    def _report(self, fps: float) -> dict:
        duration = self.frames_done / fps
        trace, bandwidth = self.client.trace, self.client.bandwidth
        return {
            "stream_id": self.stream_id, "video": getattr(self.video, "name", None) or self.video.key,
            "frames": self.frames_done, "duration_s": duration,
            "miou": trace.mean, "pretrained_miou": self.client.baseline_trace.mean,
            "miou_vs_teacher": self.client.teacher_trace.mean, "teacher_miou": self.teacher_vs_truth.mean,
            "teacher_evaluations": len(self.teacher_vs_truth.values), "teacher_seconds": self.teacher_seconds,
            "teacher_evaluations_skipped": self.teacher_evaluations_skipped,
            "teacher_evaluations_shed": self.teacher_evaluations_shed,
            "uplink_bytes": bandwidth.uplink_bytes, "downlink_bytes": bandwidth.downlink_bytes,
            "uplink_kbps": bandwidth.uplink_kbps(duration), "downlink_kbps": bandwidth.downlink_kbps(duration),
            "updates_applied": self.client.updates_applied, "rejected_packets": self.client.rejected_packets,
            "upload_errors": self.upload_errors, "upload_timeouts": self.upload_timeouts,
            "poll_failures": self.poll_failures, "packets_missed": self.packets_missed, "shed_chunks": self.shed_chunks,
            "staleness_s": self.staleness_s, "applied_wall": self.applied_wall,
            "max_lag_s": self.max_lag_s, "times_s": trace.times_s, "miou_trace": trace.values,
            "node_id": ray.get_runtime_context().get_node_id(),
            "torch_loaded": "torch" in sys.modules,  # must stay False: torch costs ~430 MB per process
            "memory_mb": own_memory_mb(),
        }
