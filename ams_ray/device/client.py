"""One device's loop: sample frames at the server's rate, upload chunks, apply packets, score.

Pure numpy + PyAV + ONNX Runtime (no torch), so the same object runs in the single-stream
simulation, in an emulated device (`actors/emulated_device.py`), and in the standalone device client.
"""

from __future__ import annotations

import logging

import numpy as np

from ams_ray.accuracy import BandwidthMeter, MiouTrace, frame_miou
from ams_ray.data.video import encode_chunk
from ams_ray.device.runtime import DeviceModel, DeviceModelBundle
from ams_ray.wire.codec import PacketError
from ams_ray.wire.messages import SampleChunk

log = logging.getLogger(__name__)


class DeviceClient:
    def __init__(
        self,
        stream_id: str,
        bundle: DeviceModelBundle,
        sampling_rate_fps: float,
        send_period_s: float,
        chunk_crf: int = 23,
        threads: int = 1,
        send_phase_s: float | None = None,
        last_chunk: int = 0,
        baseline: bool = False,
    ) -> None:
        """`send_phase_s`: video time of the first upload (default: one send period), so
        devices that started together need not upload together. `last_chunk`: the stream's
        newest chunk number; a device rejoining a stream numbers on from it. `baseline`: also
        score the never-updated pretrained model on every evaluated frame (`baseline_trace`),
        the reference of the gain."""
        self.stream_id = stream_id
        self.model = DeviceModel(bundle, threads=threads)
        self.sampling_rate_fps = sampling_rate_fps
        self.send_period_s, self.chunk_crf = send_period_s, chunk_crf
        self.baseline = DeviceModel(bundle, threads=threads) if baseline else None
        self.trace = MiouTrace()  # against the truth
        self.baseline_trace = MiouTrace()  # the pretrained model against the truth
        self.teacher_trace = MiouTrace()  # against the teacher's labels
        self.bandwidth = BandwidthMeter()
        self.rejected_packets: list[str] = []
        self.updates_applied = 0
        self.uploading = True
        self._next_sample_s = 0.0
        self._next_send_s = send_period_s if send_phase_s is None else send_phase_s
        self._buffer: list[tuple[int, float, np.ndarray, int]] = []  # (index, time, frame, model version)
        self._chunk_sequence = last_chunk

    def set_sampling_rate(self, rate_fps: float) -> None:
        if rate_fps <= 0:
            raise ValueError(f"sampling rate must be positive, got {rate_fps}")
        self.sampling_rate_fps = rate_fps

    def observe(self, index: int, time_s: float, frame: np.ndarray) -> SampleChunk | None:
        """Feed one camera frame; returns a chunk when a send period has closed."""
        if self.uploading and time_s >= self._next_sample_s:
            self._buffer.append((index, time_s, frame, self.model.version))
            self._next_sample_s += 1.0 / self.sampling_rate_fps
            self._next_sample_s = max(self._next_sample_s, time_s)  # never queue a backlog of samples
        if time_s >= self._next_send_s:
            self._next_send_s += self.send_period_s
            return self.flush()
        return None

    def flush(self) -> SampleChunk | None:
        if not self._buffer:
            return None
        indices, times, frames, versions = zip(*self._buffer)
        self._buffer = []
        self._chunk_sequence += 1
        chunk = SampleChunk(self.stream_id, self._chunk_sequence, tuple(int(i) for i in indices),
                            tuple(float(t) for t in times), encode_chunk(np.stack(frames), self.chunk_crf),
                            self.model.version, max(self.model.last_sequence, 0), tuple(int(v) for v in versions))
        self.bandwidth.uplink_bytes += chunk.num_bytes
        return chunk

    def apply_packet(self, data: bytes) -> bool:
        """Apply an update; a bad packet is logged and refused, and the device keeps its model."""
        self.bandwidth.downlink_bytes += len(data)
        try:
            packet = self.model.apply(data)
        except PacketError as exc:
            log.warning("stream %s: refused update packet: %s", self.stream_id, exc)
            self.rejected_packets.append(str(exc))
            return False
        self.updates_applied += 1
        if packet.sampling_rate_fps:
            self.set_sampling_rate(packet.sampling_rate_fps)
        return True

    def evaluate(self, time_s: float, frame: np.ndarray, truth: np.ndarray,
                 teacher_labels: np.ndarray | None = None) -> np.ndarray:
        """Score the model the device holds now against the truth (`trace`; the pretrained one
        too, with `baseline`) and, when given, against the teacher's labels (`teacher_trace`,
        AMS's own protocol). Returns the
        prediction, so teacher labels that arrive later can still score it."""
        prediction = self.model.predict(frame[None])[0]
        self.trace.add(time_s, frame_miou(truth, prediction, self.model.num_classes))
        if self.baseline is not None:
            reference = self.baseline.predict(frame[None])[0]
            self.baseline_trace.add(time_s, frame_miou(truth, reference, self.model.num_classes))
        if teacher_labels is not None:
            self.score_against_teacher(time_s, prediction, teacher_labels)
        return prediction

    def score_against_teacher(self, time_s: float, prediction: np.ndarray, teacher_labels: np.ndarray) -> None:
        self.teacher_trace.add(time_s, frame_miou(teacher_labels, prediction, self.model.num_classes))
