"""The server's side of one stream: label uploaded chunks, keep the window, decide, train.

`StreamSession` glues the library's pieces in the order the data flows; a Ray
`StreamTrainer` actor holds one and only moves messages in and out of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ams_ray.config import AmsConfig
from ams_ray.distill import OnlineDistiller, RoundResult
from ams_ray.messages import SampleChunk
from ams_ray.sampling import AdaptiveSamplingRate, AdaptiveTrainingPeriod, phi_score
from ams_ray.video import decode_chunk
from ams_ray.window import FrameWindow

log = logging.getLogger(__name__)
Labeller = Callable[[np.ndarray, list[int]], np.ndarray]


@dataclass
class SessionStats:
    chunks: int = 0
    frames_labelled: int = 0
    rounds: int = 0
    skipped_rounds: list[str] = field(default_factory=list)
    duplicate_chunks: int = 0
    missing_chunks: int = 0
    rate_history: list[tuple[float, float]] = field(default_factory=list)
    period_history: list[tuple[float, float]] = field(default_factory=list)


class StreamSession:
    def __init__(
        self,
        distiller: OnlineDistiller,
        labeller: Labeller,
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

    @property
    def sampling_rate_fps(self) -> float:
        return self.asr.rate_fps

    def receive(self, chunk: SampleChunk) -> float:
        """Label and store a chunk; returns the sampling rate the device should use next."""
        if chunk.sequence <= self._last_sequence:
            self.stats.duplicate_chunks += 1
            log.info("stream %s: dropped duplicate chunk %d", chunk.stream_id, chunk.sequence)
            return self.asr.rate_fps
        self.stats.missing_chunks += chunk.sequence - self._last_sequence - 1
        self._last_sequence = chunk.sequence
        frames = decode_chunk(chunk.h264, expected_frames=len(chunk.frame_indices))
        labels = self.labeller(frames, list(chunk.frame_indices))
        self.window.add(np.asarray(chunk.times_s), frames, labels)
        history = ([self._last_label] if self._last_label is not None else []) + list(labels)
        self._last_label = labels[-1]
        phi = phi_score(history, self.num_classes)
        now = chunk.times_s[-1]
        rate = self.asr.update(phi)
        self.atr.observe(phi, now)
        self.stats.chunks += 1
        self.stats.frames_labelled += len(frames)
        self.stats.rate_history.append((now, rate))
        return rate

    def due(self, now_s: float) -> bool:
        return self.atr.due(now_s)

    def train(self, now_s: float) -> RoundResult:
        self.window.evict(now_s)
        result = self.distiller.train_round(self.window, sampling_rate_fps=self.asr.rate_fps)
        self.atr.trained(now_s)
        self.stats.rounds += 1
        self.stats.period_history.append((now_s, self.atr.period_s))
        if result.skipped:
            self.stats.skipped_rounds.append(result.skipped)
        return result
