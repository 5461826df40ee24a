"""One stream inside a trainer host: its session, its labelling backlog, its outbox of
packets, durable log and counters.

A `TrainerHost` holds K of these and moves chunks, labels and rounds between them and the
shared teacher and training thread; everything that belongs to one stream lives here, so
streams sharing a process share nothing else. Chunks enter the backlog in sequence order
and are taken from it by one worker at a time; packets wait in the outbox until the device
polls for them. The session resumes from the stream's log (its checkpoint) when the host
(re)starts, and the log takes each chunk once labelled and each packet once the device applied it
(`ams_ray.service.stream_journal`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor, Future
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Iterator

import numpy as np

from actors.telemetry import TrainerMetrics
from ams_ray.config import AmsConfig
from ams_ray.learn.chunk_scores import score_chunk
from ams_ray.learn.distill import OnlineDistiller, RoundResult
from ams_ray.learn.session import LabellingFailed, StreamSession
from ams_ray.learn.strategies import STRATEGIES
from ams_ray.learn.training_value import TrainingValue
from ams_ray.models.student_spec import StudentSpec
from ams_ray.models.students import build_student
from ams_ray.service.checkpoint_store import CheckpointError, CheckpointStore
from ams_ray.service.label_backlog import BacklogPolicy
from ams_ray.service.packet_outbox import PacketOutbox
from ams_ray.service.stream_journal import MadePacket, StreamJournal
from ams_ray.service.stream_lease import LeaseLost
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.wire.messages import SampleChunk
from ams_ray.wire.stream_state import StreamStateError

log = logging.getLogger(__name__)
REORDER_WAIT_S = 5.0  # how long a chunk waits for a predecessor that has not arrived
CHUNK_PROBLEMS = ("duplicate_chunk", "missing_chunk", "unlabelled_chunk", "shed_chunk")


class HostedStream:
    def __init__(self, stream_id: str, label_key: str | None, student: StudentSpec, num_classes: int, config: AmsConfig,
                 strategy: str, settings: TrainerSettings, store: CheckpointStore, writer: Executor,
                 device: str, epoch: int | None = None) -> None:
        """`writer`: the host's one thread for store writes, shared by its streams, so that a
        stream's records reach its log in the order they happened. `epoch`: the stream's lease
        from the directory (None: placed once, unfenced); every log write checks it, and raises
        LeaseLost (here, from the constructor) when the stream has moved on."""
        spec = STRATEGIES[strategy]
        self.stream_id, self.label_key, self.settings, self.writer = stream_id, label_key, settings, writer
        self._new_session = lambda: StreamSession(  # no labeller: the host labels between `accept` and `record`
            OnlineDistiller(build_student(student, num_classes), config.training, spec.strategy, stream_id=stream_id,
                            encoding=config.packet_format, seed=config.seed, device=device),
            None, num_classes, config, asr=spec.asr, atr=spec.atr)
        self.session = self._new_session()
        self.epoch = epoch
        self.journal = StreamJournal(store, stream_id, self.distiller.layout.fingerprint, config.training.horizon_s,
                                     settings.snapshot_after_bytes or self.distiller.mirror_nbytes, epoch)
        self.fenced = False  # a write found the lease moved: this host must let the stream go
        self.draining = False  # leaving this host: no new chunks, the one being taken finishes
        self.order = asyncio.Condition()  # chunks enter the backlog in sequence order (see in_sequence)
        self.backlog: deque[tuple[SampleChunk, bool, float]] = deque()  # (chunk, kept, wall time it came)
        self.backlog_policy = BacklogPolicy(settings.label_backlog_chunks, config.sampling.min_rate_fps)
        self.worker: asyncio.Task | None = None  # takes the backlog in order; one at a time
        self.taking: SampleChunk | None = None  # the chunk the worker has out of the backlog now
        self.max_backlog = 0
        self.label_wait_s: list[float] = []  # per labelled chunk: from entering the backlog to its labels
        self.rate_cuts = 0  # uploads answered with a rate lowered for the backlog
        self.value = TrainingValue()  # what a round is worth to this stream (the gain scheduler reads it)
        self.priority = 0.0  # what the scheduler ranked its newest due round by
        self.newest_video_s = 0.0  # video time of the newest chunk uploaded: the stream's "now"
        self.metrics = TrainerMetrics(stream_id, lambda: len(self.backlog), lambda: self.value.expected_gain / 100.0,
                                      lambda: self.priority)
        self.teacher_batches: list[int] = []
        self.teacher_seconds = 0.0  # this stream's share of the teacher's batch time
        self.labelled_wall: list[float] = []
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.outbox = PacketOutbox()
        self.rounds_in_flight = 0
        self.deferred_rounds: dict[str, int] = {}  # due rounds the scheduler did not train, by reason
        self.reverts = 0  # packets that put the device back on the pretrained model
        self.last_activity = time.monotonic()
        self.resumed_from = self._resume()
        for chunk in self.journal.waiting:  # accepted before a restart, never labelled: labelled now
            self.backlog.append((chunk, True, time.time()))
        self.submitted = max([self.session.last_chunk] + [c.sequence for c in self.journal.waiting])

    @property
    def distiller(self) -> OnlineDistiller:
        return self.session.distiller

    @property
    def checkpoint(self) -> dict:
        """What the stream's log took so far (`StreamJournal.report`)."""
        return self.journal.report()

    def _resume(self) -> int | None:
        """Carry on from the stream's log, if any; returns the packet sequence resumed from. A
        log that cannot be used is refused by name, counted, and the stream starts afresh."""
        try:
            resumed = self.journal.restore_into(self.session)
        except (CheckpointError, StreamStateError) as exc:
            self.metrics.errors.count("checkpoint_unreadable")
            self.journal.stats["refused"] = str(exc)
            log.error("stream %s: starting afresh from the pretrained model, its log cannot be used: %s",
                      self.stream_id, exc)
            self.session = self._new_session()
            try:
                self.journal.start_afresh()
            except CheckpointError as again:
                log.error("stream %s: %s", self.stream_id, again)
            return None
        if resumed is not None:
            log.warning("stream %s: resumed from its log at packet %d", self.stream_id, resumed)
        return resumed

    # ------------------------------------------------------------------ chunks
    @asynccontextmanager
    async def in_sequence(self, sequence: int) -> AsyncIterator[None]:
        """Hold the stream's entrance for chunk `sequence`, after its predecessors.

        Ray does not promise that an async actor runs one caller's calls in the order they
        were sent, and a device may have several uploads in flight; a chunk taken before its
        predecessor would make the predecessor a "duplicate" and lose it. So a chunk waits
        (at most REORDER_WAIT_S, for a predecessor that may never come) until every lower
        sequence number has entered the backlog.
        """
        async with self.order:
            try:
                await asyncio.wait_for(self.order.wait_for(lambda: sequence <= self.submitted + 1), REORDER_WAIT_S)
            except asyncio.TimeoutError:
                pass  # its predecessor is lost or late: go on; the session counts the gap
            try:
                yield
            finally:
                self.order.notify_all()

    def submit(self, chunk: SampleChunk) -> str:
        """Into the backlog (the caller holds `in_sequence`): "accepted"; "replayed" for a number
        already taken (nothing changes); "shed" when the backlog is full (the chunk's number is
        taken, its frames are not labelled; counted)."""
        if chunk.sequence <= self.submitted:
            self.metrics.errors.count("replayed_chunk")
            return "replayed"
        self.submitted = chunk.sequence
        self.newest_video_s = max(self.newest_video_s, chunk.times_s[-1] if chunk.times_s else 0.0)
        kept = self.backlog_policy.accepts(len(self.backlog))
        self.backlog.append((chunk, kept, time.time()))
        self.max_backlog = max(self.max_backlog, len(self.backlog))
        return "accepted" if kept else "shed"

    def rate_to_tell(self) -> float:
        """The sampling rate for the device now: the session's, lowered while chunks wait."""
        rate = self.backlog_policy.rate_to_tell(self.session.sampling_rate_fps, len(self.backlog))
        if rate < self.session.sampling_rate_fps:
            self.rate_cuts += 1
        return rate

    def shed(self, chunk: SampleChunk) -> None:
        """The worker reached a chunk that was shed at the door."""
        with self._counting_problems():
            self.session.shed(chunk)
        log.warning("stream %s: chunk %d shed, %d chunks were waiting for labels", self.stream_id, chunk.sequence,
                    self.backlog_policy.max_chunks)

    def accept(self, chunk: SampleChunk) -> np.ndarray | None:
        """Decoded frames of a new chunk, or None for one already seen (counted)."""
        with self._counting_problems():
            return self.session.accept(chunk)

    def unlabelled(self, chunk: SampleChunk, reason: str) -> float:
        """The teacher gave up on the chunk's frames: skipped, counted, the stream goes on."""
        self.metrics.errors.count("teacher_failed")
        self.log_dropped(chunk)
        with self._counting_problems():
            return self.session.unlabelled(chunk, LabellingFailed(reason))

    def record(self, chunk: SampleChunk, frames: np.ndarray, results: list, submitted_wall: float) -> np.ndarray:
        """Store the teacher's replies ((labels, batch, seconds) per frame) and hand the chunk
        to the writer thread for the log; returns the labels. `submitted_wall`: when the chunk
        entered the backlog (its labels' wait is counted)."""
        self.teacher_batches += [batch for _, batch, _ in results]
        self.teacher_seconds += sum(seconds / batch for _, batch, seconds in results)
        self.labelled_wall.append(time.time())
        self.label_wait_s.append(self.labelled_wall[-1] - submitted_wall)
        labels = np.stack([labels for labels, _, _ in results])
        self.session.record(chunk, frames, labels)
        self.writer.submit(self._durably, self.journal.write_labels, chunk.sequence, labels)
        return labels

    def measure(self, chunk: SampleChunk, frames: np.ndarray, labels: np.ndarray) -> None:
        """How far the device's model (and the pretrained one) is from the teacher on the newest
        chunk, and what the models it ran there bought (`score_chunk`): off the event loop, a
        few forward passes over a few of its frames; between this stream's rounds, as its
        worker runs both."""
        scores = score_chunk(self.distiller, frames, labels, chunk.frame_versions)
        self.value.observe(scores.held, self.session.last_phi, scores.pretrained, scores.advantage)

    def revert(self) -> bytes:
        """The packet that puts the device back on the pretrained model (`OnlineDistiller.revert`),
        logged like any packet it makes."""
        packet = self.distiller.revert()
        self.journal.packet_made(packet, self.session.progress(), self.distiller.mirror_arrays)
        self.reverts += 1
        self.metrics.rounds.inc(tags={"outcome": "reverted"})
        if self.value.behind_pretrained_by > 0:
            log.info("stream %s: the device's model fell %.1f mIoU below the pretrained one; it gets the pretrained "
                     "model back until its next round", self.stream_id, self.value.behind_pretrained_by)
        else:
            log.info("stream %s: its adapted models lately did %.1f mIoU worse than the pretrained one on what the "
                     "device ran (outpaced); it gets the pretrained model back", self.stream_id, -self.value.advantage)
        return packet

    @contextmanager
    def _counting_problems(self) -> Iterator[None]:
        """Counts in `ams_errors_total` the chunk problems the session noticed inside the block."""
        s = self.session.stats
        before = (s.duplicate_chunks, s.missing_chunks, s.unlabelled_chunks, s.shed_chunks)
        yield
        for kind, was, now in zip(CHUNK_PROBLEMS, before, (s.duplicate_chunks, s.missing_chunks,
                                                           s.unlabelled_chunks, s.shed_chunks)):
            self.metrics.errors.count(kind, now - was)

    # ------------------------------------------------------------------ rounds
    def booked(self, now_s: float, result: RoundResult, seconds: float, cpu_seconds: float,
               waited_s: float) -> RoundResult:
        """A round trained for this stream (`seconds`, `cpu_seconds`: its share of the training
        thread's wall and CPU time)."""
        self.session.trained(now_s, result)
        self.value.trained(now_s, seconds, self.newest_video_s)
        self.metrics.rounds.inc(tags={"outcome": "trained"})
        if result.packet is not None:
            self.journal.packet_made(result.packet, self.session.progress(), self.distiller.mirror_arrays)
        self.train_seconds += seconds
        self.train_cpu_seconds += cpu_seconds
        self.metrics.training.observe(seconds)
        self.metrics.turn_wait.observe(waited_s)
        if result.skipped:
            self.metrics.errors.count("skipped_round")
        return result

    def deferred(self, reason: str) -> None:
        """The scheduler let a due round go untrained (`ams_ray.service.round_policy`): "stepped_aside"
        (still waiting when the next chunk came), "hibernating" (the model agrees with the teacher) or
        "outpaced" (its rounds have lately left it worse than the pretrained model)."""
        self.deferred_rounds[reason] = self.deferred_rounds.get(reason, 0) + 1
        self.metrics.rounds.inc(tags={"outcome": reason})

    # ------------------------------------------------------------------ the outbox
    async def post(self, sequence: int, packet: bytes, due_chunk: int) -> None:
        await self.outbox.post(sequence, packet, due_chunk)

    async def packet_after(self, sequence: int, timeout_s: float) -> tuple[int, bytes, int] | None:
        """The oldest packet numbered above `sequence` (with its number and its due chunk),
        waiting at most `timeout_s` for one; a packet asked for again is counted."""
        resent = self.outbox.resent
        try:
            return await self.outbox.after(sequence, timeout_s)
        finally:
            self.metrics.errors.count("packet_resent", self.outbox.resent - resent)
            self.last_activity = time.monotonic()

    def resync_if_superseded(self) -> None:
        """The device missed packets that are gone, so it cannot apply the later ones: the
        next packet patches the pretrained model (version 0), which the device applies
        whatever it holds. Called only between this stream's rounds."""
        if self.outbox.take_superseded():
            self.distiller.restart_from_pretrained()
            self.session.stats.resyncs += 1
            log.warning("stream %s: the device missed packets no longer kept; the next packet starts from the "
                        "pretrained model", self.stream_id)

    @property
    def pending(self) -> int:
        """Chunks accepted and not yet through labelling (and their round, if one fell due)."""
        return len(self.backlog) + (self.taking is not None)

    @property
    def settled(self) -> bool:
        """Every packet made here has been acknowledged by the device (so its log has it)."""
        return not self.journal.made

    @property
    def idle(self) -> bool:
        """Nothing in flight: no chunk waiting or being taken, no round, no device waiting for a packet."""
        return not (self.pending or self.rounds_in_flight or self.outbox.polls or self.order.locked())

    # ------------------------------------------------------------------ the durable log
    def acknowledged(self, packet: int, version: int) -> list[MadePacket]:
        """The device applied `packet` at `version`: the packets to log for it (none when it
        is not news). Their progress was taken when they were made (`booked`): by the time an
        acknowledgement arrives the next round may have trained, so an acknowledgement never
        waits behind a round, and a late one still logs the model the device holds."""
        return self.journal.acknowledged(packet, version)

    def log_accepted(self, chunk: SampleChunk) -> Future:
        """The chunk into the stream's log, as uploaded, on the writer thread; called while the
        chunk holds the stream's entrance, so the log takes chunks in sequence order. The
        upload is answered once this is done."""
        return self.writer.submit(self._durably, self.journal.write_accepted, chunk)

    def log_dropped(self, chunk: SampleChunk) -> None:
        """An accepted chunk taken without labels: a restore must not take it again."""
        self.writer.submit(self._durably, self.journal.write_labels, chunk.sequence, None)

    def log_packets(self, due: list[MadePacket]) -> None:
        """On the host's writer thread: acknowledged packets into the stream's log."""
        self._durably(self.journal.write_packets, due)

    def _durably(self, write, *args) -> None:
        """Run a log write on the writer thread; no caller waits for it, so a failure is
        counted and said here (once), and the stream goes on."""
        began, written = time.perf_counter(), self.journal.log.bytes_written
        try:
            write(*args)
        except LeaseLost as exc:
            if not self.fenced:
                self.metrics.errors.count("lease_lost")
                log.warning("%s; this host lets the stream go", exc)
            self.fenced = self.draining = True  # the worker stops after its chunk; the next call drops the stream
            return
        except Exception as exc:  # noqa: BLE001 - a store error, or a bug: either way the stream goes on
            self.metrics.errors.count("checkpoint_failed")
            if self.journal.stats["error"] is None:
                message = str(exc) if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {exc}"
                log.error("stream %s: %s; the stream goes on without checkpoints", self.stream_id, message)
                self.journal.stats["error"] = message
            return
        finally:
            if self.journal.log.bytes_written > written:
                self.metrics.log_bytes.inc(self.journal.log.bytes_written - written)
        self.journal.stats["seconds"] += time.perf_counter() - began

    def stats(self) -> dict:
        s = self.session.stats
        return {"stream_id": self.stream_id, "rounds": s.rounds, "skipped_rounds": s.skipped_rounds,
                "chunks": s.chunks, "frames_labelled": s.frames_labelled, "duplicate_chunks": s.duplicate_chunks,
                "missing_chunks": s.missing_chunks, "unlabelled_chunks": s.unlabelled_chunks, "resyncs": s.resyncs,
                "shed_chunks": s.shed_chunks, "max_label_backlog": self.max_backlog, "rate_cuts": self.rate_cuts,
                "packets_posted": self.outbox.posted, "packets_resent": self.outbox.resent,
                "label_wait_s": self.label_wait_s,
                "train_seconds": self.train_seconds, "train_cpu_seconds": self.train_cpu_seconds,
                "teacher_batches": self.teacher_batches, "teacher_seconds": self.teacher_seconds,
                "labelled_wall": self.labelled_wall, "checkpoint": self.checkpoint,
                "resumed_from_packet": self.resumed_from, "deferred_rounds": self.deferred_rounds,
                "reverts": self.reverts,
                "longest_round_wait_video_s": self.value.longest_wait_s, "agreement": self.value.agreement,
                "expected_gain": self.value.expected_gain}

