"""How a stream's labelling backlog bounds what its device sends.

A trainer host answers an upload as soon as the chunk is accepted and labels it behind the
stream's earlier chunks. When the teacher (or training) cannot keep up, chunks wait; rather
than let them pile up until something times out, the host tells the device a lower
sampling rate while more than one chunk waits (each waiting chunk halves it, down to the
configured minimum), and past `max_chunks` it sheds the newest chunk outright (counted; the
device's next one is taken as usual).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BacklogPolicy:
    max_chunks: int = 4  # chunks waiting to be labelled, per stream, before the next is shed
    min_rate_fps: float = 0.1  # never tell a device less than this

    def __post_init__(self) -> None:
        if self.max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1, got {self.max_chunks}")

    def accepts(self, waiting: int) -> bool:
        """Whether a chunk arriving behind `waiting` others is kept."""
        return waiting < self.max_chunks

    def rate_to_tell(self, rate_fps: float, waiting: int) -> float:
        """The sampling rate for a device whose stream has `waiting` chunks unlabelled: the
        stream's own (ASR) rate while at most one waits, halved for each one beyond."""
        if waiting <= 1:
            return rate_fps
        return max(self.min_rate_fps, min(rate_fps, rate_fps / 2 ** (waiting - 1)))
