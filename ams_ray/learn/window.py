"""The sliding window of labelled frames the server trains a stream's student on."""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameWindow:
    """Frames and teacher labels of the last `horizon_s` seconds of video time.

    Kept as uint8 arrays (a 128x256 frame with labels is 128 KiB), so a 250 s window at
    1 frame/s costs ~32 MiB per stream and is cheap to checkpoint.
    """

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self._items: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, times_s: np.ndarray, frames: np.ndarray, labels: np.ndarray) -> None:
        if not len(times_s) == len(frames) == len(labels):
            raise ValueError(f"{len(times_s)} times, {len(frames)} frames and {len(labels)} label maps differ")
        if frames.shape[:3] != labels.shape:
            raise ValueError(f"frames {frames.shape} and labels {labels.shape} differ in size")
        for t, f, l in zip(times_s, frames, labels):
            self._items.append((float(t), f, l))
        self.evict(float(times_s[-1]) if len(times_s) else 0.0)

    @property
    def newest_s(self) -> float:
        return self._items[-1][0] if self._items else 0.0

    def arrays(self, newer_than_s: float = float("-inf")) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times, frames, labels) of the frames after `newer_than_s`: what a checkpoint keeps."""
        kept = [item for item in self._items if item[0] > newer_than_s]
        if not kept:
            return np.zeros(0), np.zeros((0, 0, 0, 3), np.uint8), np.zeros((0, 0, 0), np.uint8)
        times, frames, labels = zip(*kept)
        return np.asarray(times, dtype=np.float64), np.stack(frames), np.stack(labels)

    def evict(self, now_s: float) -> None:
        while self._items and self._items[0][0] < now_s - self.horizon_s:
            self._items.popleft()

    def sample(
        self, rng: np.random.Generator, batch_size: int, recent_fraction: float = 0.0, recent_s: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch drawn uniformly over the window, except `recent_fraction` of it drawn from
        the frames of the last `recent_s` seconds.

        Uniform sampling (the original) lets a long window of an old scene outvote the new
        one for many rounds after a cut; the recent share makes the first round after a
        cut already train mostly on the new scene, while the rest keeps the model stable.
        """
        if not self._items:
            raise ValueError("cannot sample from an empty window")
        n = len(self._items)
        newest = self._items[-1][0]
        first_recent = next(i for i in range(n) if self._items[i][0] >= newest - recent_s)
        n_recent = int(round(batch_size * recent_fraction))
        idx = np.concatenate([
            rng.integers(first_recent, n, size=n_recent),
            rng.choice(n, size=batch_size - n_recent, replace=n < batch_size - n_recent),
        ]).astype(np.int64)
        return (np.stack([self._items[i][1] for i in idx]), np.stack([self._items[i][2] for i in idx]))
