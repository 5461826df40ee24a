"""Teachers that look labels up instead of computing them, and the protocol every teacher follows.

They live beside the data because a device uses them too: its truth labels are a label
directory or a synthetic video's exact labels, read without torch.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ams_ray.data.datasets import SyntheticSpec
from ams_ray.data.label_store import LabelArchive, LabelStore, resize_labels
from ams_ray.data.synthetic import NUM_CLASSES


class Teacher(Protocol):
    """The one protocol every teacher follows, built-in or plugin.

    `label` gets a batch of RGB frames (uint8, shape (N, H, W, 3)) and, for each, its frame
    index in its video (cached teachers look labels up by it; models ignore it), and returns
    one class-id map per frame (shape (N, H, W), ids in 0..num_classes-1).
    """

    num_classes: int

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray: ...


class CachedLabelTeacher:
    """Reads precomputed labels (the original's extract_labels workflow, or synthetic truth)."""

    def __init__(self, store: LabelStore | LabelArchive) -> None:
        self.store = store
        self.num_classes = store.num_classes

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        h, w = frames.shape[1:3]
        return np.stack([resize_labels(self.store.read(int(i)), h, w) for i in frame_indices])


class SyntheticOracle:
    """Exact labels of a synthetic video, re-rendered from its spec wherever the teacher runs."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.video = spec.video()
        self.num_classes = NUM_CLASSES

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        h, w = frames.shape[1:3]
        return np.stack([resize_labels(self.video.labels(int(i)), h, w) for i in frame_indices])
