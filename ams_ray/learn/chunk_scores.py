"""How the models a device ran did on a chunk, against the teacher's labels of its frames.

The gain scheduler reads three numbers from every labelled chunk (`TrainingValue`):
- the mirror's agreement: the model the device holds now, or is about to. It says what one
  more round could still win, and whether to send the pretrained model back;
- the pretrained model's agreement on the same frames;
- what adapting bought on those frames *as the device ran them*: each frame scored with the
  model version the device ran on it (the chunk reports it, `SampleChunk.frame_versions`),
  minus the pretrained model, over the frames it ran an adapted model on.

Why the third is not the first minus the second: an update that reaches the device late
serves only the frames after it. Scoring the mirror credits it with the frames before. In a
scratch probe (one fast-changing synthetic camera, seed 2, 120 s, its updates delayed 2, 8
and 15 video seconds) the mirror scored the same at every delay, while the device's real
gain over the pretrained model went from +2.7 to -3.6 and -6.5.

Only `SCORED_FRAMES` of a chunk's frames are scored: the forward passes took 0.12 CPU-s for a
10-frame chunk on this machine's CPU, and at twice a CPU server's capacity that was about a
third of the CPU its training took (0.26 against 0.74 CPU-s per second), so a scheduler that
scored every frame ran its own rounds late.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ams_ray.learn.distill import OnlineDistiller

HELD_VERSIONS = 3  # model versions kept: the newest and two before, more than an update is late by
SCORED_FRAMES = 4  # frames of a chunk scored, spread over the chunk


@dataclass(frozen=True)
class ChunkScores:
    held: float  # mIoU points of the mirror (the model the device holds now)
    pretrained: float  # of the pretrained model, on the same frames
    advantage: float | None  # of the adapted models the device ran, minus pretrained; None: it ran none here


class HeldModels:
    """The weights of the device's last few model versions, as the server made them (None for a
    version that is the pretrained model: version 0, and a revert)."""

    def __init__(self) -> None:
        self._weights: OrderedDict[int, list[torch.Tensor] | None] = OrderedDict({0: None})

    def add(self, version: int, weights: list[torch.Tensor] | None) -> None:
        self._weights[version] = weights
        self._weights.move_to_end(version)
        while len(self._weights) > HELD_VERSIONS:
            self._weights.popitem(last=False)

    def reset(self, version: int, weights: list[torch.Tensor] | None) -> None:
        """The device holds only this version now (a restore, or a restart from the pretrained model)."""
        self._weights.clear()
        self.add(version, weights)

    def __contains__(self, version: int) -> bool:
        return version in self._weights

    def weights(self, version: int) -> list[torch.Tensor] | None:
        return self._weights[version]


def frames_to_score(count: int) -> list[int]:
    """Indices of the frames of a `count`-frame chunk to score: at most `SCORED_FRAMES`, spread
    evenly from its first to its last, so a scene change inside the chunk is seen."""
    if count <= SCORED_FRAMES:
        return list(range(count))
    return sorted({round(i * (count - 1) / (SCORED_FRAMES - 1)) for i in range(SCORED_FRAMES)})


def score_chunk(distiller: "OnlineDistiller", frames: np.ndarray, labels: np.ndarray,
                versions: tuple[int, ...] = ()) -> ChunkScores:
    """Score a chunk's `frames_to_score` against their `labels`; `versions`: the model version
    the device ran on each frame (empty: not reported, and the mirror stands in for what it
    ran). Frames that ran a version the server no longer keeps are left out of the advantage."""
    scored = frames_to_score(len(frames))
    frames, labels = frames[scored], labels[scored]
    versions = tuple(versions[i] for i in scored) if versions else ()
    held = distiller.frame_agreements(frames, labels)
    pretrained = held if distiller.at_pretrained else distiller.frame_agreements(frames, labels, distiller.pretrained)
    if not versions:
        ran = {} if distiller.at_pretrained else dict(enumerate(held))
    else:
        ran = {}
        for version in sorted(set(versions)):
            if version not in distiller.held or distiller.held.weights(version) is None:
                continue  # forgotten, or the pretrained model: says nothing about adapting
            chosen = [i for i, v in enumerate(versions) if v == version]
            scores = ([held[i] for i in chosen] if version == distiller.version else
                      distiller.frame_agreements(frames[chosen], labels[chosen], distiller.held.weights(version)))
            ran.update(zip(chosen, scores))
    advantage = float(np.mean([ran[i] - pretrained[i] for i in ran])) if ran else None
    return ChunkScores(float(np.mean(held)), float(np.mean(pretrained)), advantage)
