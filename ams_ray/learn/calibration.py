"""How long one training round of a student takes on this machine now: what capacity is planned from.

A round costs the same whatever the pixels, so it is timed on a full window of noise, with no
video, teacher or stream needed; the first of two rounds pays for warm-up (allocations, the
first kernels), the second is the figure.
"""

from __future__ import annotations

import time

import numpy as np

from ams_ray.learn.distill import OnlineDistiller
from ams_ray.learn.window import FrameWindow

FRAMES = 8  # a window's worth of samples at the default rate


def round_seconds(distiller: OnlineDistiller, height: int, width: int, period_s: float) -> float:
    """Wall seconds of one round of `distiller` (a fresh one: it is trained here) at height x width."""
    rng = np.random.default_rng(0)
    window = FrameWindow(period_s)
    frames = rng.integers(0, 256, (FRAMES, height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, distiller.model.num_classes, (FRAMES, height, width), dtype=np.uint8)
    window.add(np.linspace(0.0, period_s, FRAMES), frames, labels)
    distiller.train_round(window)
    began = time.perf_counter()
    distiller.train_round(window)
    return time.perf_counter() - began
