"""Adaptive sampling rate (ASR) and adaptive training period (ATR).

Both read phi, the mean mIoU between the teacher labels of consecutive sampled frames: near
1 when the scene barely changes between samples, lower when it moves.

ASR has two rules (`SamplingConfig.rule`):

- `paper`, the AMS paper's: `rate <- clip(rate - 0.2 * tanh(20 * (phi - 0.6)), min, max)`.
  Above phi 0.6 the rate falls, below it rises, by at most 0.2 frames/s per update: an
  additive step that saturates, so the rate walks to its bounds on any scene whose phi stays
  on one side of 0.6.
- `proportional`: keeps the change between consecutive samples (1 - phi) near
  `target_change`. If samples differ by more, the scene moves faster than we sample it and
  the rate rises in proportion, and vice versa; because phi rises with the rate, this
  settles where each sample carries about the same news. The factor per update is bounded
  (x0.5 .. x2) so one noisy chunk cannot swing it.

Both are clipped to `min_rate_fps .. max_rate_fps` (0.1 .. 2 by default; the paper clips at
1). The paper's is the default; why, with the figures, is in `SamplingConfig.rule`.

ATR hibernates on static scenes: while phi stays above `static_phi` the training period
doubles (up to `max_period_factor` times the base period); as soon as phi drops below it,
the period snaps back and a round is due at once (wake on change). The original release
computed an ATR signal but never acted on it; here it changes when training happens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ams_ray.accuracy import frame_miou
from ams_ray.config import SamplingConfig


def phi_score(labels: Sequence[np.ndarray], num_classes: int) -> float | None:
    """Mean mIoU (0..1) between consecutive label maps; None with fewer than two."""
    if len(labels) < 2:
        return None
    scores = [frame_miou(a, b, num_classes) for a, b in zip(labels[:-1], labels[1:])]
    return float(np.mean(scores)) / 100.0


class AdaptiveSamplingRate:
    def __init__(self, config: SamplingConfig, enabled: bool = True) -> None:
        self.config, self.enabled = config, enabled
        self.rate_fps = config.initial_rate_fps

    def update(self, phi: float | None) -> float:
        if self.enabled and phi is not None:
            self.rate_fps = float(np.clip(self._next_rate(phi), self.config.min_rate_fps, self.config.max_rate_fps))
        return self.rate_fps

    def _next_rate(self, phi: float) -> float:
        config = self.config
        if config.rule == "paper":
            return self.rate_fps - config.rate_step_fps * float(np.tanh(config.rate_gain * (phi - config.phi_target)))
        change = max(1.0 - phi, 1e-3)
        return self.rate_fps * float(np.clip(change / config.target_change, 0.5, 2.0))


class AdaptiveTrainingPeriod:
    def __init__(self, base_period_s: float, config: SamplingConfig, enabled: bool = True) -> None:
        self.base_period_s, self.config, self.enabled = base_period_s, config, enabled
        self.factor = 1
        self.next_due_s = base_period_s

    @property
    def period_s(self) -> float:
        return self.base_period_s * self.factor

    def observe(self, phi: float | None, now_s: float) -> None:
        """Fold in the phi of newly labelled frames; may wake a hibernating stream."""
        if not self.enabled or phi is None:
            return
        if phi >= self.config.static_phi:
            self.factor = min(self.factor * 2, self.config.max_period_factor)
        elif self.factor > 1:
            self.factor = 1
            self.next_due_s = min(self.next_due_s, now_s)  # wake: train on the change now

    def due(self, now_s: float) -> bool:
        return now_s >= self.next_due_s

    def trained(self, now_s: float) -> None:
        self.next_due_s = now_s + self.period_s
