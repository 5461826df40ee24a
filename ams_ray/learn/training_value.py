"""What one more training round is worth to a stream, from signals AMS already has.

Inside one stream, AMS reads phi (how much the teacher's labels change between samples) to
set its sampling rate and training period. Across streams the same question decides who
trains when the server cannot train everyone: a round is worth what it can still win, and
the best cheap estimate of that is how far the device's model has fallen from where its
training got it.

- `agreement`: mIoU (points) of the model the device holds against the teacher's labels of
  the newest chunk, measured by the server on frames it labelled anyway. A camera whose
  scene just changed drops to 50-75 here with the tiny student; one that was trained on its
  scene sits at 78-92 (measured on the synthetic world, `--scene-mix`), and stays there.
- `ceiling`: the best (smoothed) agreement the stream reached since its first round, sinking
  `CEILING_DECAY` points a chunk so a harder scene lowers it. What a round can win is the
  distance from the agreement now up to the ceiling, not up to 100: a small student on a
  fixed camera levels off near 80, and more rounds there buy nothing (the last rounds'
  improvement, read this way). Before its first round a stream's ceiling is 100.
- `phi`: a scene moving between samples (low phi) will drift away from the model even if it
  agrees now, so it adds to the estimate (`DRIFT_WEIGHT`), lightly: objects moving across a
  fixed camera already keep phi near 0.9, while a new scene drops it to 0.5.
- the stream's own round time: the estimate is per second of training, so a student that
  trains in half the time is worth twice as much per turn.
- the pretrained model's agreement on the same frames: a device whose adapted model fell
  below it (its scene changed under it) is better off on the pretrained model until its next
  round, and `behind_pretrained_by` says by how much (newest chunk, not smoothed).
- `advantage`: what the adapted models the device ran beat the pretrained one by, frame by
  frame with the version it ran on each (`chunk_scores`), smoothed over chunks: what adapting
  has actually bought this stream lately, as its device saw it. A camera whose scenes change
  faster than its rounds come back spends each scene's first seconds on a model made for the
  last one, and this goes below zero: its rounds buy it less than nothing (`ams_ray.service.round_policy`, "outpaced").

Smoothed over chunks (`SMOOTHING`), since a chunk carries a handful of frames (and only a
few of them are scored, `chunk_scores.SCORED_FRAMES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SMOOTHING = 0.5  # weight of the newest chunk in the running agreement and phi
CEILING_DECAY = 0.5  # mIoU points a chunk the ceiling sinks (10 points over 200 s of video)
ADVANTAGE_SMOOTHING = 0.1  # weight of the newest chunk in `advantage` (after its first 10: a plain mean)
DRIFT_WEIGHT = 0.1  # mIoU points of expected gain per point of label change between samples
MIN_ROUND_S = 0.05  # a round never counts as free


@dataclass
class TrainingValue:
    agreement: float | None = None  # mIoU points, device model vs teacher, smoothed
    ceiling: float | None = None  # the best smoothed agreement since the stream's first round (None before)
    phi: float | None = None  # 0..1, smoothed
    behind_pretrained_by: float = 0.0  # mIoU points the pretrained model beat the device's on the newest chunk
    advantage: float | None = None  # mIoU points the adapted model beat the pretrained one, smoothed
    adapted_chunks: int = 0  # chunks scored while the device held an adapted model (`advantage`'s evidence)
    probing: bool = False  # its newest round was trained while it was outpaced, to see whether it keeps up
    round_s: float | None = None  # training seconds per round, smoothed
    last_trained_s: float = 0.0  # video time of the stream's newest trained round
    waiting_since_s: float | None = None  # video time its oldest unanswered due round fell due
    longest_wait_s: float = 0.0  # video seconds a due round waited for training, at most

    def observe(self, agreement: float | None, phi: float | None, pretrained_agreement: float | None = None,
                advantage: float | None = None) -> None:
        """Fold in the newest labelled chunk (`ams_ray.learn.chunk_scores`); `advantage`: what the
        adapted models the device ran on its frames beat the pretrained one by (None: it ran none)."""
        self.agreement = _smoothed(self.agreement, agreement)
        self.phi = _smoothed(self.phi, phi)
        if self.round_s is not None and self.agreement is not None:  # trained at least once
            self.ceiling = self.agreement if self.ceiling is None else max(self.ceiling - CEILING_DECAY, self.agreement)
        if agreement is not None and pretrained_agreement is not None:
            self.behind_pretrained_by = pretrained_agreement - agreement
        if advantage is not None:
            self.adapted_chunks += 1
            self.advantage = _smoothed(self.advantage, advantage, max(ADVANTAGE_SMOOTHING, 1 / self.adapted_chunks))

    @property
    def expected_gain(self) -> float:
        """mIoU points a round could still win: the distance below the ceiling, plus drift."""
        reach = self.ceiling if self.ceiling is not None else 100.0
        gap = reach - self.agreement if self.agreement is not None else 100.0
        change = 1.0 - self.phi if self.phi is not None else 0.0
        return max(0.0, gap) + DRIFT_WEIGHT * 100.0 * change

    @property
    def per_second(self) -> float:
        """Expected gain per second of training."""
        return self.expected_gain / max(self.round_s or 1.0, MIN_ROUND_S)

    def since_trained_s(self, now_s: float) -> float:
        return now_s - self.last_trained_s

    def asked(self, now_s: float) -> None:
        """A round fell due and was asked for; the wait runs from the first one unanswered."""
        if self.waiting_since_s is None:
            self.waiting_since_s = now_s

    def rested(self) -> None:
        """The stream asked for nothing (it hibernates): it is not waiting."""
        self.waiting_since_s = None

    def trained(self, now_s: float, seconds: float, answered_s: float | None = None) -> None:
        """A round due at `now_s` trained in `seconds`; `answered_s`: the stream's video time when
        it was answered (its newest chunk then), which ends the wait (default: `now_s`)."""
        if self.waiting_since_s is not None:
            end = now_s if answered_s is None else max(now_s, answered_s)
            self.longest_wait_s = max(self.longest_wait_s, end - self.waiting_since_s)
        self.waiting_since_s = None
        self.last_trained_s = now_s
        self.round_s = _smoothed(self.round_s, seconds)


def _smoothed(old: float | None, new: float | None, weight: float = SMOOTHING) -> float | None:
    if new is None or not math.isfinite(new):
        return old
    return new if old is None else (1 - weight) * old + weight * new
