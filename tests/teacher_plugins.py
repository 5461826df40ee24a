"""Teachers written as users write them (`MODULE:FACTORY`), for the fleet and Serve tests.

Importable by Ray workers because Ray puts the driver's sys.path (pytest's rootdir) on theirs.
"""

from __future__ import annotations

import time

import numpy as np

from ams_ray.data.synthetic import _PROTOTYPES, NUM_CLASSES


class ColourTeacher:
    """Labels pixels by the nearest class prototype colour: a real, if weak, teacher that
    looks only at the pixels it is sent."""

    num_classes = NUM_CLASSES

    def __init__(self, seconds_per_batch: float = 0.0) -> None:
        self.seconds_per_batch = seconds_per_batch

    def label(self, frames: np.ndarray, frame_indices=None) -> np.ndarray:
        time.sleep(self.seconds_per_batch)
        distance = ((frames[..., None, :].astype(np.float32) - _PROTOTYPES) ** 2).sum(-1)
        return distance.argmin(-1).astype(np.uint8)


class BrokenTeacher:
    num_classes = NUM_CLASSES

    def label(self, frames: np.ndarray, frame_indices=None) -> np.ndarray:
        raise RuntimeError("this teacher's model is broken")


def colour() -> ColourTeacher:
    return ColourTeacher()


def slow_colour() -> ColourTeacher:
    """Two seconds a batch: long enough to kill its replica in the middle of one."""
    return ColourTeacher(seconds_per_batch=2.0)


def broken() -> BrokenTeacher:
    return BrokenTeacher()


class FramesOnlyTeacher:
    """Written against an old protocol: `label` takes the frames alone."""

    num_classes = 2

    def label(self, frames: np.ndarray) -> np.ndarray:
        return np.zeros(frames.shape[:3], np.uint8)


def frames_only() -> FramesOnlyTeacher:
    return FramesOnlyTeacher()


def failing_factory() -> ColourTeacher:
    raise OSError("model file people.pth not found")


def stalled_colour() -> ColourTeacher:
    """Twenty seconds a batch: a teacher that holds a chunk while the test sends more."""
    return ColourTeacher(seconds_per_batch=20.0)


def lagging_colour() -> ColourTeacher:
    """Twelve seconds a batch: longer than the call timeout of the test that uses it."""
    return ColourTeacher(seconds_per_batch=12.0)
