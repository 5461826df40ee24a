"""Which records of a stream's log a restore still needs, so compaction can drop the rest.

A chunk matters while any of its frames is inside the training window (`horizon_s` of video
time behind the newest frame, as `FrameWindow` keeps it; a device clock that goes back
starts a new window). A packet matters while the model is built from it: from the newest
packet that starts from the pretrained model (base version 0), or the newest snapshot,
whichever is later, up to the newest packet. Pure bookkeeping: no I/O, no clocks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LoggedChunk:
    segment: int
    sequence: int
    first_s: float
    last_s: float


@dataclass(frozen=True)
class LoggedPacketInfo:
    segment: int
    sequence: int
    base_version: int
    nbytes: int


class Retention:
    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.chunks: deque[LoggedChunk] = deque()
        self.packets: list[LoggedPacketInfo] = []  # the chain a restore replays, oldest first
        self.newest_s: float | None = None

    def chunk(self, segment: int, sequence: int, times_s: tuple[float, ...]) -> None:
        if not times_s:
            return
        if self.newest_s is not None and times_s[0] < self.newest_s:
            self.chunks.clear()  # the device's clock went back: the window restarts (StreamSession does the same)
            self.newest_s = None
        self.newest_s = max(times_s[-1], self.newest_s if self.newest_s is not None else times_s[-1])
        self.chunks.append(LoggedChunk(segment, sequence, times_s[0], times_s[-1]))
        while self.chunks and self.chunks[0].last_s < self.newest_s - self.horizon_s:
            self.chunks.popleft()

    def packet(self, segment: int, sequence: int, base_version: int, nbytes: int) -> None:
        if base_version == 0:
            self.packets.clear()
        self.packets.append(LoggedPacketInfo(segment, sequence, base_version, nbytes))

    def snapshot(self, sequence: int) -> None:
        """A snapshot holds the model up to packet `sequence`: the packets before it are not replayed."""
        self.packets = [p for p in self.packets if p.sequence > sequence]

    @property
    def chain_bytes(self) -> int:
        """Packet bytes a restore would replay onto the pretrained model or the snapshot."""
        return sum(p.nbytes for p in self.packets)

    def live_chunks(self) -> list[LoggedChunk]:
        return list(self.chunks)

    def oldest_live_segment(self, next_segment: int) -> int:
        """The first segment a restore needs; every segment before it can go."""
        firsts = ([self.chunks[0].segment] if self.chunks else []) + ([self.packets[0].segment] if self.packets else [])
        return min(firsts, default=next_segment)
