"""A hosted stream's durable side: what it writes to its log, when, and how it comes back.

Each write costs about what crossed the wire (`ams_ray.wire.stream_records`):

* a chunk, as uploaded, before the upload is answered; its label maps once the teacher has
  labelled it (or a mark that it was dropped unlabelled);
* a packet, when the device acknowledges it: the packet as sent and the stream's progress
  when it was made (a few hundred bytes);
* a snapshot of the weights, only when the packets a restore would replay since the last
  one (`restart_from_pretrained` off) pass `snapshot_after_bytes`.

Progress is taken when a packet is *made*, not when it is acknowledged: by then the next
round may have trained, and the progress read then would not match the model the device
holds. Until acknowledged, a packet waits here (a few KB each, at most `MADE_KEPT`); the
window is never copied. Reads and writes run on the host's writer thread; `packet_made` and
`acknowledged` run on its event loop and touch only the packets waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ams_ray.learn.session import StreamSession
from ams_ray.service.checkpoint_store import CheckpointError, CheckpointStore
from ams_ray.service.log_retention import Retention
from ams_ray.service.packet_outbox import OUTBOX_SIZE
from ams_ray.service.stream_log import StreamLog
from ams_ray.wire.codec import PacketError, packet_numbers
from ams_ray.wire.log_framing import LogDamaged
from ams_ray.wire.messages import SampleChunk
from ams_ray.wire.stream_records import (ACCEPTED, LABELS, PACKET, ChunkLabels, LabelledChunk, LoggedPacket,
                                          Progress)
from ams_ray.wire.stream_state import StreamState, StreamStateError

MADE_KEPT = 2 * OUTBOX_SIZE  # packets made and not yet acknowledged; a device never acknowledges older ones
COMPACT_AFTER_SEGMENTS = 8  # dead segments allowed to pile up before the manifest drops them


@dataclass(frozen=True)
class MadePacket:
    packet: bytes
    sequence: int
    base_version: int
    version: int
    progress: Progress
    mirror: list[np.ndarray] | None  # the weights after it, when it is to become a snapshot


class StreamJournal:
    def __init__(self, store: CheckpointStore, stream_id: str, fingerprint: str, horizon_s: float,
                 snapshot_after_bytes: int, epoch: int | None = None) -> None:
        """`epoch`: the stream's lease held by this host, which fences every write (`StreamLog`)."""
        self.stream_id, self.fingerprint = stream_id, fingerprint
        self.log = StreamLog(store, stream_id, epoch)
        self.retention = Retention(horizon_s)
        self.snapshot_after_bytes = snapshot_after_bytes
        self.made: dict[int, MadePacket] = {}
        self.chain_made_bytes = 0  # packet bytes made since the model was last based on a snapshot or version 0
        self.force_snapshot = False  # a packet of the chain was dropped unacknowledged
        self.durable_sequence = self.durable_version = 0  # the newest packet the log holds, and its version
        self.logged_sequence = 0  # the newest packet a write has put in the store
        self.waiting: list[SampleChunk] = []  # restored: accepted, never labelled
        self.stats = {"written": 0, "chunks": 0, "snapshots": 0, "seconds": 0.0, "error": None, "refused": None}

    def report(self) -> dict:
        """What the log took so far: acknowledgements written, chunks labelled, snapshots,
        seconds writing, the first write error and a refused log, if any; the newest packet
        it holds (`sequence`) and the bytes this process put in the store."""
        return {**self.stats, "sequence": self.logged_sequence, "bytes": self.log.bytes_written}

    # ------------------------------------------------------------------ restore
    def restore_into(self, session: StreamSession) -> int | None:
        """Resume `session` from the log; returns the packet sequence resumed at, or None for a
        stream with no log. Chunks accepted and never labelled are left in `waiting`, for the
        host to label now. Raises StreamStateError (LogDamaged included) naming the damage."""
        contents = self.log.read()
        self.log.take_over(contents)
        if contents.snapshot is None and not contents.records:
            return None
        snapshot = StreamState.from_bytes(contents.snapshot) if contents.snapshot is not None else None
        based_on = snapshot.progress.packet_sequence if snapshot is not None else 0
        packets, accepted, labelled = [], {}, []
        for segment, kind, payload in contents.records:
            if kind == ACCEPTED:
                chunk = SampleChunk.from_bytes(payload)
                accepted[chunk.sequence] = chunk
                self.retention.accepted(segment, chunk.sequence, chunk.times_s)
            elif kind == LABELS:
                labels = ChunkLabels.from_bytes(payload)
                chunk = accepted.pop(labels.sequence, None)
                if chunk is not None and labels.labels is not None:
                    labelled.append(LabelledChunk(chunk.sequence, chunk.frame_indices, chunk.times_s, chunk.h264,
                                                  labels.labels))
                    self.retention.labelled(chunk.sequence)
                else:
                    self.retention.dropped(labels.sequence)
            elif kind == PACKET:
                logged = LoggedPacket.from_bytes(payload)
                sequence, base, _ = self._numbers(logged.packet)
                if sequence > based_on:
                    packets.append(logged)
                    self.retention.packet(segment, sequence, base, len(logged.packet))
            else:
                raise LogDamaged(f"stream {self.stream_id}: segment {segment} holds a record of unknown kind {kind}")
        session.resume(snapshot, packets, labelled)
        self.waiting = sorted(accepted.values(), key=lambda c: c.sequence)
        self.durable_sequence = self.logged_sequence = session.distiller.sequence
        self.durable_version = session.distiller.version
        self.chain_made_bytes = self.retention.chain_bytes
        return session.distiller.sequence

    def start_afresh(self) -> None:
        """After a refused log: later segments follow the unusable ones, which are removed."""
        self.log.start_afresh()
        self.retention = Retention(self.retention.horizon_s)

    def _numbers(self, packet: bytes) -> tuple[int, int, int]:
        try:
            return packet_numbers(packet)
        except (PacketError, ValueError, KeyError) as exc:
            raise StreamStateError(f"stream {self.stream_id}: a logged packet does not parse ({exc})") from exc

    # ------------------------------------------------------------------ on the event loop
    def packet_made(self, packet: bytes, progress: Progress, mirror: Callable[[], list[np.ndarray]]) -> None:
        """A packet went to the outbox with the stream's `progress`; `mirror` reads the weights
        after it, called only when this packet is to become a snapshot."""
        sequence, base, version = packet_numbers(packet)
        self.chain_made_bytes = len(packet) + (self.chain_made_bytes if base else 0)
        wants_snapshot = base != 0 and (self.force_snapshot or self.chain_made_bytes > self.snapshot_after_bytes)
        if wants_snapshot:
            self.chain_made_bytes, self.force_snapshot = 0, False
        self.made[sequence] = MadePacket(packet, sequence, base, version, progress, mirror() if wants_snapshot else None)
        while len(self.made) > MADE_KEPT:
            self.made.pop(min(self.made))
            self.force_snapshot = True  # a later packet may build on the dropped one: base the chain anew

    def acknowledged(self, sequence: int, version: int) -> list[MadePacket]:
        """The device applied packet `sequence` at `version`: the packets to log for it (it and
        the unlogged ones before it, which the device applied first), or none."""
        made = self.made.get(sequence)
        if made is None or made.version != version or sequence <= self.durable_sequence:
            return []
        due = [self.made.pop(s) for s in sorted(self.made) if s <= sequence]
        if due[0].base_version not in (0, self.durable_version) and due[0].mirror is None:
            return []  # it builds on a packet dropped unacknowledged: the log could not rebuild it
        self.durable_sequence, self.durable_version = sequence, version
        return due

    # ------------------------------------------------------------------ on the writer thread
    def write_accepted(self, chunk: SampleChunk) -> None:
        """A chunk the stream took, as uploaded; written before the upload is answered."""
        segment = self.log.append([(ACCEPTED, chunk.to_bytes())])
        self.retention.accepted(segment, chunk.sequence, chunk.times_s)
        self._compact_if_worth_it()

    def write_labels(self, sequence: int, labels: np.ndarray | None) -> None:
        """The teacher's labels for accepted chunk `sequence`, or None: it was dropped unlabelled."""
        self.log.append([(LABELS, ChunkLabels(sequence, labels).to_bytes())])
        if labels is None:
            self.retention.dropped(sequence)
        else:
            self.retention.labelled(sequence)
            self.stats["chunks"] += 1
        self._compact_if_worth_it()

    def write_packets(self, due: list[MadePacket]) -> None:
        """Log acknowledged packets: from the newest that carries its weights as a snapshot (if
        any), then the packets after it, in order. If the store fails, the next packet made
        carries its weights, so the log's model does not build on the packets lost."""
        try:
            self._write_packets(due)
        except CheckpointError:
            self.force_snapshot = True
            raise
        self.stats["written"] += 1
        self.logged_sequence = due[-1].sequence

    def _write_packets(self, due: list[MadePacket]) -> None:
        based = max((i for i, m in enumerate(due) if m.mirror is not None), default=None)
        if based is not None:
            base = due[based]
            self.retention.snapshot(base.sequence)
            state = StreamState(self.stream_id, self.fingerprint, base.progress, base.mirror)
            self.log.commit(self.retention.oldest_live_segment(self.log.next_segment),
                            (base.sequence, state.to_bytes()))
            self.stats["snapshots"] += 1
            due = due[based + 1:]
        if due:
            segment = self.log.append([(PACKET, LoggedPacket(m.packet, m.progress).to_bytes()) for m in due])
            for m in due:
                self.retention.packet(segment, m.sequence, m.base_version, len(m.packet))
            self._compact_if_worth_it()

    def _compact_if_worth_it(self) -> None:
        first = self.retention.oldest_live_segment(self.log.next_segment)
        if first - self.log.first_segment >= COMPACT_AFTER_SEGMENTS:
            self.log.commit(first)
