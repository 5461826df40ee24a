"""One stream inside a trainer host: its session, metrics, checkpoints and counters.

A `TrainerHost` holds K of these and moves chunks, labels and rounds between them and the
shared teacher and training thread; everything that belongs to one stream lives here, so
streams sharing a process share nothing else. The session resumes from the stream's
checkpoint when the host (re)starts, and is checkpointed once per packet the device applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Iterator

import numpy as np

from actors.telemetry import TrainerMetrics
from ams_ray.config import AmsConfig
from ams_ray.learn.distill import OnlineDistiller, RoundResult
from ams_ray.learn.session import LabellingFailed, StreamSession
from ams_ray.learn.strategies import STRATEGIES
from ams_ray.models.student_spec import StudentSpec
from ams_ray.models.students import build_student
from ams_ray.service.checkpoint_store import CheckpointError, CheckpointStore
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.wire.messages import SampleChunk
from ams_ray.wire.stream_state import StreamState, StreamStateError

log = logging.getLogger(__name__)
REORDER_WAIT_S = 5.0  # how long a chunk waits for a predecessor that has not arrived
CHUNK_PROBLEMS = ("duplicate_chunk", "missing_chunk", "unlabelled_chunk")
OUTBOX_SIZE = 8  # packets kept for a device that polls; an older one is superseded by a resync anyway


class HostedStream:
    def __init__(self, stream_id: str, label_key: str | None, student: StudentSpec, num_classes: int, config: AmsConfig,
                 strategy: str, settings: TrainerSettings, store: CheckpointStore, device: str) -> None:
        spec = STRATEGIES[strategy]
        self.stream_id, self.label_key, self.settings, self.store = stream_id, label_key, settings, store
        self.distiller = OnlineDistiller(build_student(student, num_classes), config.training, spec.strategy,
                                         stream_id=stream_id, encoding=config.packet_format, seed=config.seed,
                                         device=device)
        # No labeller: the host labels asynchronously between `accept` and `record`.
        self.session = StreamSession(self.distiller, None, num_classes, config, asr=spec.asr, atr=spec.atr)
        self.order = asyncio.Condition()  # one chunk at a time, in sequence order (see in_sequence)
        self.metrics = TrainerMetrics(stream_id)
        self.teacher_batches: list[int] = []
        self.teacher_seconds = 0.0  # this stream's share of the teacher's batch time
        self.labelled_wall: list[float] = []
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.unacknowledged: StreamState | None = None  # the state behind the newest packet sent
        self.checkpoint = {"written": 0, "sequence": 0, "bytes": 0, "seconds": 0.0, "error": None}
        self.outbox: list[tuple[int, bytes, int]] = []  # (sequence, packet, due chunk) for HTTP devices
        self.mail = asyncio.Condition()
        self.rounds_in_flight = 0
        self.polls = 0  # devices waiting for a packet now (long-polls)
        self.last_activity = time.monotonic()
        self.resumed_from = self._resume()

    def _resume(self) -> int | None:
        """Restore the last checkpoint, if any; returns the packet sequence resumed from."""
        try:
            data = self.store.load(self.stream_id)
            if data is None:
                return None
            self.session.restore(StreamState.from_bytes(data))
        except (CheckpointError, StreamStateError) as exc:
            self.metrics.errors.count("checkpoint_unreadable")
            log.error("stream %s: starting afresh, the checkpoint cannot be used: %s", self.stream_id, exc)
            return None
        log.warning("stream %s: resumed from its checkpoint at packet %d", self.stream_id, self.distiller.sequence)
        return self.distiller.sequence

    # ------------------------------------------------------------------ chunks
    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the stream (no chunk is taken meanwhile), e.g. to train a round in the background."""
        async with self.order:
            try:
                yield
            finally:
                self.order.notify_all()

    @asynccontextmanager
    async def in_sequence(self, sequence: int) -> AsyncIterator[None]:
        """Hold the stream for chunk `sequence`, after its predecessors.

        Ray does not promise that an async actor runs one caller's calls in the order they
        were sent, and a device may have several uploads in flight; a chunk taken before its
        predecessor would make the predecessor a "duplicate" and lose it. So a chunk waits
        (at most REORDER_WAIT_S, for a predecessor that may never come) until every lower
        sequence number has been taken.
        """
        async with self.order:
            try:
                await asyncio.wait_for(self.order.wait_for(lambda: sequence <= self.session.last_chunk + 1),
                                       REORDER_WAIT_S)
            except asyncio.TimeoutError:
                pass  # its predecessor is lost or late: go on; the session counts the gap
            try:
                yield
            finally:
                self.order.notify_all()

    def accept(self, chunk: SampleChunk) -> np.ndarray | None:
        """Decoded frames of a new chunk, or None for one already seen (counted)."""
        with self._counting_problems():
            return self.session.accept(chunk)

    def unlabelled(self, chunk: SampleChunk, reason: str) -> float:
        """The teacher gave up on the chunk's frames: skipped, counted, the stream goes on."""
        self.metrics.errors.count("teacher_failed")
        with self._counting_problems():
            return self.session.unlabelled(chunk, LabellingFailed(reason))

    def record(self, chunk: SampleChunk, frames: np.ndarray, results: list) -> float:
        """Store the teacher's replies ((labels, batch, seconds) per frame); returns the rate."""
        self.teacher_batches += [batch for _, batch, _ in results]
        self.teacher_seconds += sum(seconds / batch for _, batch, seconds in results)
        self.labelled_wall.append(time.time())
        return self.session.record(chunk, frames, np.stack([labels for labels, _, _ in results]))

    @contextmanager
    def _counting_problems(self) -> Iterator[None]:
        """Counts in `ams_errors_total` the chunk problems the session noticed inside the block."""
        s = self.session.stats
        before = (s.duplicate_chunks, s.missing_chunks, s.unlabelled_chunks)
        yield
        for kind, was, now in zip(CHUNK_PROBLEMS, before, (s.duplicate_chunks, s.missing_chunks,
                                                           s.unlabelled_chunks)):
            self.metrics.errors.count(kind, now - was)

    # ------------------------------------------------------------------ rounds
    def booked(self, now_s: float, result: RoundResult, seconds: float, cpu_seconds: float,
               waited_s: float) -> RoundResult:
        """A round trained for this stream (`seconds`, `cpu_seconds`: its share of the training
        thread's wall and CPU time)."""
        self.session.trained(now_s, result)
        if result.packet is not None:
            self.unacknowledged = self.session.snapshot(self.settings.checkpoint_window_s)
        self.train_seconds += seconds
        self.train_cpu_seconds += cpu_seconds
        self.metrics.training.observe(seconds)
        self.metrics.turn_wait.observe(waited_s)
        if result.skipped:
            self.metrics.errors.count("skipped_round")
        return result

    # ------------------------------------------------------------------ the outbox (HTTP devices)
    async def post(self, sequence: int, packet: bytes, due_chunk: int) -> None:
        """A packet for the device to fetch; `due_chunk`: the upload that made its round due."""
        self.outbox = [*self.outbox[-(OUTBOX_SIZE - 1):], (sequence, packet, due_chunk)]
        async with self.mail:
            self.mail.notify_all()

    async def packet_after(self, sequence: int, timeout_s: float) -> tuple[int, bytes, int] | None:
        """The oldest packet numbered above `sequence` (with its number and its due chunk),
        waiting at most `timeout_s` for one."""
        def first() -> tuple[int, bytes, int] | None:
            return next((entry for entry in self.outbox if entry[0] > sequence), None)

        self.polls += 1
        try:
            async with self.mail:
                try:
                    await asyncio.wait_for(self.mail.wait_for(lambda: first() is not None), timeout_s)
                except asyncio.TimeoutError:
                    return None
                return first()
        finally:
            self.polls -= 1
            self.last_activity = time.monotonic()

    @property
    def idle(self) -> bool:
        """Nothing in flight: no chunk being taken, no round, no device waiting for a packet."""
        return not (self.rounds_in_flight or self.polls or self.order.locked())

    # ------------------------------------------------------------------ checkpoints
    def acknowledged(self, packet: int, version: int) -> StreamState | None:
        """The device applied `packet`: the state that produced it, to write once.

        The state is taken when the packet is made (`booked`), not when the acknowledgement
        arrives: by then the next round may already have trained, and a state read then
        would not be the model the device holds. So an acknowledgement never waits behind a
        round, and a late one still checkpoints the right model."""
        state = self.unacknowledged
        if state is None or (state.packet_sequence, state.version) != (packet, version) \
                or packet <= self.checkpoint["sequence"]:
            return None
        self.unacknowledged = None
        return state

    def closing_state(self) -> StreamState | None:
        """The stream as it stands, to keep when it closes, if the device holds the server's
        model (its last packet acknowledged); else None, and the last checkpoint stands."""
        if self.unacknowledged is not None or self.checkpoint["sequence"] != self.distiller.sequence:
            return None
        return self.session.snapshot(self.settings.checkpoint_window_s)

    def write_checkpoint(self, state: StreamState) -> None:
        began = time.perf_counter()
        try:
            data = state.to_bytes()
            self.store.save(self.stream_id, data)
        except CheckpointError as exc:
            self.metrics.errors.count("checkpoint_failed")
            if self.checkpoint["error"] is None:  # said once; the stream goes on without checkpoints
                log.error("stream %s: %s; the stream goes on without checkpoints", self.stream_id, exc)
                self.checkpoint["error"] = str(exc)
            return
        self.checkpoint.update(written=self.checkpoint["written"] + 1, bytes=len(data),
                               sequence=state.packet_sequence, seconds=self.checkpoint["seconds"] + time.perf_counter() - began)

    def stats(self) -> dict:
        s = self.session.stats
        return {"stream_id": self.stream_id, "rounds": s.rounds, "skipped_rounds": s.skipped_rounds,
                "chunks": s.chunks, "frames_labelled": s.frames_labelled, "duplicate_chunks": s.duplicate_chunks,
                "missing_chunks": s.missing_chunks, "unlabelled_chunks": s.unlabelled_chunks, "resyncs": s.resyncs,
                "train_seconds": self.train_seconds, "train_cpu_seconds": self.train_cpu_seconds,
                "teacher_batches": self.teacher_batches, "teacher_seconds": self.teacher_seconds,
                "labelled_wall": self.labelled_wall, "checkpoint": self.checkpoint,
                "resumed_from_packet": self.resumed_from}

