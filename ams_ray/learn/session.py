"""The server's side of one stream: label uploaded chunks, keep the window, decide, train.

`StreamSession` glues the library's pieces in the order the data flows; a Ray
`TrainerHost` actor holds one per stream and only moves messages in and out of them.
`progress` and `resume` are how it outlives the process hosting it: the stream's log keeps
its chunks and packets, and `resume` rebuilds the session from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ams_ray.config import AmsConfig
from ams_ray.data.video import decode_chunk
from ams_ray.learn.distill import OnlineDistiller, RoundResult
from ams_ray.learn.sampling import AdaptiveSamplingRate, AdaptiveTrainingPeriod, phi_score
from ams_ray.learn.window import FrameWindow
from ams_ray.wire.codec import PacketError
from ams_ray.wire.messages import SampleChunk
from ams_ray.wire.stream_records import LabelledChunk, LoggedPacket, Progress
from ams_ray.wire.stream_state import StreamState, StreamStateError

log = logging.getLogger(__name__)
Labeller = Callable[[np.ndarray, list[int]], np.ndarray]
COUNTERS = ("chunks", "frames_labelled", "rounds", "duplicate_chunks", "missing_chunks", "unlabelled_chunks",
            "resyncs")


class LabellingFailed(RuntimeError):
    """The teacher could not label a chunk; the chunk is skipped and the stream goes on."""


@dataclass
class SessionStats:
    chunks: int = 0
    frames_labelled: int = 0
    rounds: int = 0
    skipped_rounds: list[str] = field(default_factory=list)
    duplicate_chunks: int = 0
    missing_chunks: int = 0
    unlabelled_chunks: int = 0  # chunks the teacher failed to label (skipped, counted)
    shed_chunks: int = 0  # chunks the server chose not to label, its labelling backlog being full
    resyncs: int = 0  # times the device held a model the server did not (see OnlineDistiller.reconcile)
    rate_history: list[tuple[float, float]] = field(default_factory=list)
    period_history: list[tuple[float, float]] = field(default_factory=list)


class StreamSession:
    def __init__(
        self,
        distiller: OnlineDistiller,
        labeller: Labeller | None,
        num_classes: int,
        config: AmsConfig,
        asr: bool,
        atr: bool,
    ) -> None:
        self.distiller, self.labeller, self.num_classes = distiller, labeller, num_classes
        self.window = FrameWindow(config.training.horizon_s)
        self.asr = AdaptiveSamplingRate(config.sampling, enabled=asr)
        self.atr = AdaptiveTrainingPeriod(config.training.period_s, config.sampling, enabled=atr)
        self.stats = SessionStats()
        self._last_label: np.ndarray | None = None
        self._last_sequence = 0
        self.last_phi: float | None = None  # of the newest labelled chunk (None: too few labels yet)

    @property
    def sampling_rate_fps(self) -> float:
        return self.asr.rate_fps

    @property
    def last_chunk(self) -> int:
        """Sequence number of the newest chunk accepted (0: none yet)."""
        return self._last_sequence

    def receive(self, chunk: SampleChunk) -> float:
        """Label and store a chunk; returns the sampling rate the device should use next.
        A session made without a labeller is fed through `accept` and `record` instead."""
        if self.labeller is None:
            raise RuntimeError("this session has no labeller: label accepted frames yourself and call record()")
        frames = self.accept(chunk)
        if frames is None:
            return self.asr.rate_fps
        try:
            labels = self.labeller(frames, list(chunk.frame_indices))
        except LabellingFailed as exc:
            return self.unlabelled(chunk, exc)
        return self.record(chunk, frames, labels)

    def accept(self, chunk: SampleChunk) -> np.ndarray | None:
        """First half of `receive`, for callers that label asynchronously: the chunk's decoded
        frames, or None for a duplicate (dropped and counted)."""
        if chunk.sequence <= self._last_sequence:
            self.stats.duplicate_chunks += 1
            log.info("stream %s: dropped duplicate chunk %d", chunk.stream_id, chunk.sequence)
            return None
        self.stats.missing_chunks += chunk.sequence - self._last_sequence - 1
        self._last_sequence = chunk.sequence
        self._follow_clock(chunk.times_s)
        if self.distiller.reconcile(chunk.model_version, chunk.last_packet):
            self.stats.resyncs += 1
        return decode_chunk(chunk.h264, expected_frames=len(chunk.frame_indices))

    def _follow_clock(self, times_s: tuple[float, ...]) -> None:
        if len(self.window) and times_s and times_s[0] < self.window.newest_s:
            self._clock_restarted(times_s[0])

    def _clock_restarted(self, now_s: float) -> None:
        """The device's video clock went back (it restarted, e.g. a camera rebooting): frames
        stamped on the old clock cannot share a window with new ones, and a round due on the
        old clock would not come for as long; so the window starts empty and the next round
        falls due a training period after the new clock's first chunk."""
        log.warning("stream %s: the device's clock went back from %.1f s to %.1f s; the window restarts",
                    self.distiller.stream_id, self.window.newest_s, now_s)
        self.window = FrameWindow(self.window.horizon_s)
        self._last_label = None
        self.atr.next_due_s = now_s + self.atr.period_s

    def shed(self, chunk: SampleChunk) -> None:
        """A chunk the server did not label (its backlog was full): its number is taken, so the
        next chunk is no gap, and nothing else of it is kept."""
        self.stats.missing_chunks += max(0, chunk.sequence - self._last_sequence - 1)
        self._last_sequence = max(self._last_sequence, chunk.sequence)
        self.stats.shed_chunks += 1

    def unlabelled(self, chunk: SampleChunk, error: Exception) -> float:
        """The teacher gave up on an accepted chunk: skip it, count it, keep the rate."""
        self.stats.unlabelled_chunks += 1
        log.warning("stream %s: chunk %d skipped, no labels (%s)", chunk.stream_id, chunk.sequence, error)
        return self.asr.rate_fps

    def record(self, chunk: SampleChunk, frames: np.ndarray, labels: np.ndarray) -> float:
        """Second half of `receive`: window, phi score, ASR and ATR; returns the new rate."""
        return self._learn(chunk.times_s, frames, labels)

    def _learn(self, times_s: tuple[float, ...], frames: np.ndarray, labels: np.ndarray) -> float:
        self.window.add(np.asarray(times_s), frames, labels)
        history = ([self._last_label] if self._last_label is not None else []) + list(labels)
        self._last_label = labels[-1]
        phi = self.last_phi = phi_score(history, self.num_classes)
        now = times_s[-1]
        rate = self.asr.update(phi)
        self.atr.observe(phi, now)
        self.stats.chunks += 1
        self.stats.frames_labelled += len(frames)
        self.stats.rate_history.append((now, rate))
        return rate

    def due(self, now_s: float) -> bool:
        return self.atr.due(now_s)

    def train(self, now_s: float) -> RoundResult:
        window, rate = self.round_inputs(now_s)
        return self.trained(now_s, self.distiller.train_round(window, sampling_rate_fps=rate))

    def round_inputs(self, now_s: float) -> tuple[FrameWindow, float]:
        """What a round due at `now_s` trains on, and the sampling rate its packet carries."""
        self.window.evict(now_s)
        return self.window, self.asr.rate_fps

    def trained(self, now_s: float, result: RoundResult) -> RoundResult:
        """Book a round trained here or elsewhere (a fused step, `ams_ray.learn.fused_training`)."""
        self.atr.trained(now_s)
        self.stats.rounds += 1
        self.stats.period_history.append((now_s, self.atr.period_s))
        if result.skipped:
            self.stats.skipped_rounds.append(result.skipped)
        return result

    def progress(self) -> Progress:
        """The stream's numbering and controllers now: with the packet just made, what its
        log entry keeps (`ams_ray.service.stream_journal`)."""
        d = self.distiller
        return Progress(packet_sequence=d.sequence, version=d.version, chunk_sequence=self._last_sequence,
                        sampling_rate_fps=self.asr.rate_fps, training_period_factor=self.atr.factor,
                        next_training_due_s=self.atr.next_due_s, rng_state=d.rng.bit_generator.state,
                        counters={name: getattr(self.stats, name) for name in COUNTERS})

    def resume(self, snapshot: StreamState | None, packets: list[LoggedPacket], chunks: list[LabelledChunk]) -> None:
        """Carry on from a stream's log: the model from `snapshot` (or the pretrained weights)
        and the acknowledged `packets` after it; numbering, controllers and sampler from the
        newest of them; the window from `chunks`, decoded again. Chunks the newest packet's
        round had seen only refill the window; later ones are learned from again, in order,
        exactly as when they arrived, so the stream stands where it stood after its last
        labelled chunk (apart from rounds whose packets were never acknowledged)."""
        progress = snapshot.progress if snapshot is not None else None
        if snapshot is not None:
            if snapshot.fingerprint != self.distiller.layout.fingerprint:
                raise StreamStateError(
                    f"checkpoint of {snapshot.stream_id} is for model {snapshot.fingerprint}, this trainer builds "
                    f"{self.distiller.layout.fingerprint}: it was written by another student or class set"
                )
            self.distiller.restore(snapshot.mirror, progress.version, progress.packet_sequence)
        for logged in packets:
            try:
                self.distiller.replay(logged.packet)
            except PacketError as exc:
                raise StreamStateError(f"the log of stream {self.distiller.stream_id} cannot be replayed: {exc}") from exc
            progress = logged.progress
        if progress is not None:
            self._carry_on_from(progress)
        seen = progress.chunk_sequence if progress is not None else 0
        for chunk in chunks:
            frames = decode_chunk(chunk.h264, expected_frames=len(chunk.frame_indices))
            self._follow_clock(chunk.times_s)
            if chunk.sequence <= seen:
                self.window.add(np.asarray(chunk.times_s), frames, chunk.labels)
                self._last_label = chunk.labels[-1]
            else:
                self._last_sequence = max(self._last_sequence, chunk.sequence)
                self._learn(chunk.times_s, frames, chunk.labels)

    def _carry_on_from(self, progress: Progress) -> None:
        self.distiller.rng.bit_generator.state = progress.rng_state
        self._last_sequence = progress.chunk_sequence
        self.asr.rate_fps = progress.sampling_rate_fps
        self.atr.factor, self.atr.next_due_s = progress.training_period_factor, progress.next_training_due_s
        for name in COUNTERS:
            setattr(self.stats, name, progress.counters.get(name, 0))
