"""Which records of a stream's log a restore still needs, so compaction can drop the rest.

A chunk matters from the moment it is accepted: while it waits for the teacher (a restore
takes it again), and once labelled while any of its frames is inside the training window
(`horizon_s` of video time behind the newest labelled frame, as `FrameWindow` keeps it; a
device clock that goes back starts a new window). A chunk dropped without labels no longer
matters. A packet matters while the model is built from it: from the newest packet that
starts from the pretrained model (base version 0), or the newest snapshot, whichever is
later, up to the newest packet. Pure bookkeeping: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoggedChunk:
    segment: int  # where it was accepted; its labels come in a later segment
    sequence: int
    first_s: float
    last_s: float
    labelled: bool = False


@dataclass(frozen=True)
class LoggedPacketInfo:
    segment: int
    sequence: int
    base_version: int
    nbytes: int


class Retention:
    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.chunks: dict[int, LoggedChunk] = {}  # by sequence, in the order accepted
        self.packets: list[LoggedPacketInfo] = []  # the chain a restore replays, oldest first
        self.newest_s: float | None = None  # of the labelled window

    def accepted(self, segment: int, sequence: int, times_s: tuple[float, ...]) -> None:
        if times_s:
            self.chunks[sequence] = LoggedChunk(segment, sequence, times_s[0], times_s[-1])

    def labelled(self, sequence: int) -> None:
        chunk = self.chunks.get(sequence)
        if chunk is None:
            return
        if self.newest_s is not None and chunk.first_s < self.newest_s:
            for old in [c for c in self.chunks.values() if c.labelled]:  # the device's clock went back:
                del self.chunks[old.sequence]  # the window restarts (StreamSession does the same)
            self.newest_s = None
        chunk.labelled = True
        self.newest_s = max(chunk.last_s, self.newest_s if self.newest_s is not None else chunk.last_s)
        for old in [c for c in self.chunks.values() if c.labelled and c.last_s < self.newest_s - self.horizon_s]:
            del self.chunks[old.sequence]

    def dropped(self, sequence: int) -> None:
        """Taken without labels (shed, unlabelled): a restore must not take it again."""
        self.chunks.pop(sequence, None)

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
        return list(self.chunks.values())

    def oldest_live_segment(self, next_segment: int) -> int:
        """The first segment a restore needs; every segment before it can go."""
        return min([c.segment for c in self.chunks.values()] + [p.segment for p in self.packets[:1]],
                   default=next_segment)
