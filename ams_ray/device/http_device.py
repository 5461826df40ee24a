"""A standalone device: plays a video on its own clock, runs the edge model, talks HTTP.

    python -m ams_ray.device --server http://127.0.0.1:8000 --device cam-7 --token T --video street.mp4
        [--truth labels/street] [--speed 1] [--duration 60] [--out device.json]

It needs numpy, PyAV, ONNX Runtime and requests; never Ray or torch (the service tests run it
from a venv that holds only `pip install .`). Three threads share one `DeviceClient`: the player samples frames
and scores the model, an uploader sends chunks (a queue of a few; the oldest is dropped
while the server is away), and a poller long-polls for packets and applies them. When the
server restarts, uploads and polls retry with backoff while the video keeps playing, and
the device goes on with the model version it holds; the service resumes the stream from
its checkpoint and reconciles with that version.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ams_ray.config import AmsConfig
from ams_ray.data.label_lookup import CachedLabelTeacher, Teacher
from ams_ray.data.label_store import LabelStore
from ams_ray.data.video import VideoReader
from ams_ray.device.client import DeviceClient
from ams_ray.device.link import DeviceLink, DeviceRefused, ServerUnavailable, WireStats
from ams_ray.wire.messages import SampleChunk

log = logging.getLogger("ams_ray.device")
UPLOAD_QUEUE = 3  # chunks held while the server is away; older ones are dropped (the video moved on)
POLL_WAIT_S = 20.0


OpenVideo = Callable[[int, int], VideoReader]  # (height, width) -> frames at that size


class HttpDevice:
    """`open_video` plays the device's video at the size the service asks for; `truth`, when
    given, labels played frames exactly (a label directory, or a synthetic video's oracle)."""

    def __init__(self, server: str, device_id: str, token: str, open_video: OpenVideo, truth: Teacher | None = None,
                 speed: float = 1.0, duration_s: float | None = None, profile: str = "cpu",
                 give_up_after_s: float = 300.0, linger_s: float = 120.0, send_phase_s: float | None = None) -> None:
        """`send_phase_s`: video time of the first upload (default: one send period); devices
        started together should not all upload at the same instants."""
        self.device_id, self.open_video, self.speed, self.duration_s = device_id, open_video, speed, duration_s
        self.linger_s, self.send_phase_s = linger_s, send_phase_s
        self.config = AmsConfig.for_profile(profile)
        self.stats = WireStats()
        self._links = [DeviceLink(server, device_id, token, self.stats, give_up_after_s=give_up_after_s)
                       for _ in range(3)]  # one per thread: player (model), uploader, poller
        self.truth = truth
        self.sent_wall: dict[int, float] = {}  # chunk sequence -> when its upload began
        self.staleness_s: list[float] = []  # from the upload that made a round due to its packet applied
        self.applied_wall: list[float] = []
        self.max_lag_s = 0.0
        self.frames_played = 0
        self.model_lock = threading.Lock()
        self.client: DeviceClient | None = None
        self.uploads: queue.Queue[SampleChunk | None] = queue.Queue(UPLOAD_QUEUE)
        self.dropped_chunks = 0
        self.replayed_chunks = 0
        self.shed_chunks = 0  # uploads the server took without labelling (its backlog for this stream was full)
        self.packets_missed = 0  # packet numbers skipped: superseded before this device polled
        self.after = 0  # newest packet number seen (applied or refused)
        self.failure: str | None = None
        self.fps = 0.0
        self.done = threading.Event()

    def run(self) -> dict:
        start = self._links[0].fetch_model()
        self.after = start.packet_sequence
        height, width = start.frame_size
        self.client = DeviceClient(self.device_id, start.bundle, self.config.sampling.initial_rate_fps,
                                 self.config.training.send_period_s, self.config.video.chunk_crf,
                                 send_phase_s=self.send_phase_s, last_chunk=start.chunk_sequence,
                                 baseline=self.truth is not None)
        workers = [threading.Thread(target=self._upload_loop, name="uploader", daemon=True),
                   threading.Thread(target=self._poll_loop, name="poller", daemon=True)]
        for worker in workers:
            worker.start()
        began = time.time()
        self._play(self.open_video(height, width))
        self._enqueue(self.client.flush())
        self.uploads.put(None)
        workers[0].join()
        self._drain()
        self.done.set()  # the poller stops after its current long-poll; nothing waits for it
        with self.model_lock:
            return self._report(time.time() - began)

    def _play(self, reader: VideoReader) -> None:
        fps = self.fps = reader.fps
        last = int(self.duration_s * fps) if self.duration_s else None
        start = said = time.time()
        for index, frame in enumerate(reader):
            if (last is not None and index >= last) or self.failure:
                break
            video_s = index / fps
            ahead = start + video_s / self.speed - time.time()
            if ahead > 0:
                time.sleep(ahead)
            self.max_lag_s = max(self.max_lag_s, -ahead)
            self._enqueue(self.client.observe(index, video_s, frame))
            if index % self.config.eval_every == 0:
                self._evaluate(index, video_s, frame)
            self.frames_played = index + 1
            if time.time() - said >= 10.0:
                said = time.time()
                log.info("%s: %.0f s of video, model version %d, %d updates, mIoU %.1f", self.device_id, video_s,
                         self.client.model.version, self.client.updates_applied, self.client.trace.recent_mean(10.0))

    def _evaluate(self, index: int, video_s: float, frame: np.ndarray) -> None:
        with self.model_lock:
            if self.truth is None:
                self.client.model.predict(frame[None])  # what the device is for, scored or not
                return
            self.client.evaluate(video_s, frame, self.truth.label(frame[None], [index])[0])

    def _enqueue(self, chunk: SampleChunk | None) -> None:
        if chunk is None:
            return
        while True:
            try:
                self.uploads.put_nowait(chunk)
                return
            except queue.Full:
                try:
                    self.uploads.get_nowait()
                    self.dropped_chunks += 1
                except queue.Empty:
                    pass

    def _upload_loop(self) -> None:
        link = self._links[1]
        while (chunk := self.uploads.get()) is not None:
            if self.failure:
                continue
            self.sent_wall[chunk.sequence] = time.time()
            try:
                reply = link.upload(chunk)
            except (DeviceRefused, ServerUnavailable) as exc:
                self._fail(f"upload of chunk {chunk.sequence}: {exc}")
                continue
            if reply["outcome"] == "replayed":
                self.replayed_chunks += 1
                continue
            self.shed_chunks += reply["outcome"] == "shed"  # taken, not labelled: the server's backlog was full
            if reply.get("sampling_rate_fps"):
                self.client.set_sampling_rate(reply["sampling_rate_fps"])

    def _poll_loop(self) -> None:
        link = self._links[2]
        while not self.done.is_set():
            try:
                reply = link.next_packet(self.after, self.client.model.version, POLL_WAIT_S)
            except (DeviceRefused, ServerUnavailable) as exc:
                if not self.done.is_set():
                    self._fail(f"polling for packets: {exc}")
                return
            if reply is None:
                continue
            sequence, packet, due_chunk = reply
            if self.after and sequence > self.after + 1:
                self.packets_missed += sequence - self.after - 1  # gone from the server's outbox: superseded
            self.after = sequence
            with self.model_lock:
                applied = self.client.apply_packet(packet)
            if applied:
                now = time.time()
                self.applied_wall.append(now)
                if due_chunk in self.sent_wall:
                    self.staleness_s.append(now - self.sent_wall[due_chunk])

    def _drain(self) -> None:
        """After the last upload: wait (at most `linger_s`) until the server has labelled and
        trained what this device sent and its packets have come down (an upload is answered
        before its labels, so the last rounds come after the video ends)."""
        deadline = time.monotonic() + self.linger_s
        while self.failure is None and time.monotonic() < deadline:
            try:
                status = self._links[0].status()
            except (DeviceRefused, ServerUnavailable):
                return
            if not status.get("pending") and self.after >= status["packet_sequence"]:
                return
            time.sleep(1.0)

    def _fail(self, reason: str) -> None:
        """A refusal no retry fixes (or a server gone past the budget) ends the device's run."""
        if self.failure is None:
            self.failure = reason
            log.error("%s: %s", self.device_id, reason)

    def _report(self, wall_s: float) -> dict:
        frames = self.frames_played
        duration = frames / self.fps if frames else 0.0
        c = self.client
        return {"device": self.device_id, "frames": frames, "duration_s": duration, "wall_s": wall_s,
                "failure": self.failure, "model_version": c.model.version, "updates_applied": c.updates_applied,
                "rejected_packets": c.rejected_packets, "miou": c.trace.mean if self.truth else None,
                "pretrained_miou": c.baseline_trace.mean if self.truth else None,
                "uplink_bytes": c.bandwidth.uplink_bytes, "downlink_bytes": c.bandwidth.downlink_bytes,
                "uplink_kbps": c.bandwidth.uplink_kbps(duration), "downlink_kbps": c.bandwidth.downlink_kbps(duration),
                "dropped_chunks": self.dropped_chunks, "replayed_chunks": self.replayed_chunks,
                "shed_chunks": self.shed_chunks, "packets_missed": self.packets_missed,
                "staleness_s": self.staleness_s, "applied_wall": self.applied_wall, "max_lag_s": self.max_lag_s,
                "times_s": c.trace.times_s, "miou_trace": c.trace.values,
                "http": self.stats.report(), "torch_loaded": sys.modules.get("torch") is not None,
                "ray_loaded": sys.modules.get("ray") is not None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ams_ray.device", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="the service's URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--device", required=True, help="this device's id (as registered)")
    p.add_argument("--token", required=True, help="this device's token (from `python -m serve.devices add`)")
    p.add_argument("--video", required=True, type=Path, help="a video file (anything PyAV opens)")
    p.add_argument("--truth", type=Path, default=None, help="a label directory (extract-labels) to score against")
    p.add_argument("--speed", type=float, default=1.0, help="video seconds per wall second (default real time)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of video")
    p.add_argument("--give-up-after", type=float, default=300.0,
                   help="seconds a request keeps retrying an unreachable server before the device stops")
    p.add_argument("--out", type=Path, default=None, help="also write the final report here as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
    if not args.video.is_file():
        print(f"error: video file not found: {args.video}", file=sys.stderr)
        return 2
    truth = CachedLabelTeacher(LabelStore(args.truth)) if args.truth else None
    device = HttpDevice(args.server, args.device, args.token, lambda h, w: VideoReader(args.video, h, w), truth,
                    args.speed, args.duration, give_up_after_s=args.give_up_after)
    try:
        report = device.run()
    except (DeviceRefused, ServerUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if report["failure"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
