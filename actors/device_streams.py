"""The side of a TrainerHost that serves devices over HTTP (`serve/ingress.py`).

A device in the field is not a Ray actor waiting on a reply: its upload is answered as soon
as the chunk is labelled (with the sampling rate), a round that falls due trains in the
background, and the packet waits in the stream's outbox until the device's long-poll takes
it; that poll also acknowledges the packet before it, which checkpoints the stream. Streams
open when their device first calls (from their checkpoint, if any) and close after
`idle_retire_s` without a call, keeping their state. Mixed into `TrainerHost`, whose
`_take`, `_queue_round`, `_checkpoint_if_due` and stream table it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ams_ray.wire.messages import SampleChunk

log = logging.getLogger(__name__)


class DeviceStreams:
    def device_started(self, stream_id: str) -> dict:
        """A device fetched the pretrained model to start from: open its stream (resuming its
        checkpoint) and restart the stream's model from version 0 too, so the next packet fits.
        Returns what the device should know about the stream."""
        self._opened(stream_id).distiller.restart_from_pretrained()
        return self.stream_status(stream_id)

    async def submit_chunk(self, stream_id: str, data: bytes) -> tuple[str, float]:
        """One upload from an HTTP device -> (outcome, sampling rate). Outcomes: "accepted",
        "replayed" (a sequence number already taken: nothing changes), "unlabelled" (the teacher
        failed; skipped and counted). A round that falls due trains in the background; its
        packet goes to the stream's outbox (`next_packet`)."""
        stream = self._opened(stream_id)
        chunk = SampleChunk.from_bytes(data)
        async with stream.in_sequence(chunk.sequence):
            if chunk.sequence <= stream.session.last_chunk:
                stream.metrics.errors.count("replayed_chunk")
                return "replayed", stream.session.sampling_rate_fps
            rate, due_at = await self._take(stream, chunk)
            if rate is None:
                return "unlabelled", stream.session.sampling_rate_fps
            if due_at is not None:  # asks for the stream before this chunk lets go of it: trains before the next
                stream.rounds_in_flight += 1
                asyncio.get_running_loop().create_task(self._train_in_background(stream, due_at, chunk.sequence))
        return "accepted", rate

    def stream_status(self, stream_id: str) -> dict:
        """Where the stream stands (opening it, from its checkpoint, if it was closed)."""
        stream = self._opened(stream_id)
        s = stream.session.stats
        return {"stream_id": stream_id, "host": self.host_id, "resumed_from_packet": stream.resumed_from,
                "packet_sequence": stream.distiller.sequence, "model_version": stream.distiller.version,
                "chunk_sequence": stream.session.last_chunk, "chunks": s.chunks, "rounds": s.rounds,
                "duplicate_chunks": s.duplicate_chunks, "missing_chunks": s.missing_chunks, "resyncs": s.resyncs,
                "sampling_rate_fps": stream.session.sampling_rate_fps, "checkpoint": dict(stream.checkpoint)}

    def open_streams(self) -> list[str]:
        return sorted(self.streams)

    async def next_packet(self, stream_id: str, after: int, version: int | None,
                          timeout_s: float) -> tuple[int, bytes, int] | None:
        """The stream's oldest packet numbered above `after`, its number and the chunk that made
        its round due, waiting up to
        `timeout_s` (a long-poll). `version`: the model version the device holds after packet
        `after`, which acknowledges it (the stream is checkpointed, as on `acknowledge`)."""
        stream = self._opened(stream_id)
        if version is not None:
            await self._checkpoint_if_due(stream, after, version)
        return await stream.packet_after(after, timeout_s)

    async def _train_in_background(self, stream, now_s: float, due_chunk: int) -> None:
        try:
            async with stream.held():
                result = await self._queue_round(stream, now_s)
                sequence = stream.distiller.sequence
            if result.packet is not None:
                await stream.post(sequence, result.packet, due_chunk)
        except Exception as exc:  # noqa: BLE001 - no caller waits: the error is counted and logged
            stream.metrics.errors.count("round_failed")
            log.error("stream %s: a round failed: %s", stream.stream_id, exc)
        finally:
            stream.rounds_in_flight -= 1

    def _opened(self, stream_id: str):
        """A stream of this host, opened (from its checkpoint, if any) when a device first shows up."""
        if stream_id not in self.streams:
            self.streams[stream_id] = self._new_stream(stream_id, None)
            self._ensure_retiring()
        stream = self.streams[stream_id]
        stream.last_activity = time.monotonic()
        return stream

    def _ensure_retiring(self) -> None:
        if self.settings.idle_retire_s and self._retiring is None:
            self._retiring = asyncio.get_running_loop().create_task(self._retire_idle())

    async def _retire_idle(self) -> None:
        """Drop streams no device has touched for `idle_retire_s`; their last checkpoint stays, so
        a device that comes back resumes from it."""
        while True:
            await asyncio.sleep(min(5.0, self.settings.idle_retire_s / 2))
            cutoff = time.monotonic() - self.settings.idle_retire_s
            for sid, stream in list(self.streams.items()):
                if stream.last_activity < cutoff and stream.idle:
                    del self.streams[sid]
                    self.retired += 1
                    state = stream.closing_state()
                    if state is not None:  # keeps the chunks since the last packet too
                        await asyncio.get_running_loop().run_in_executor(self.checkpoint_thread,
                                                                         stream.write_checkpoint, state)
                    log.info("host %s: retired idle stream %s (checkpoint at packet %d kept)", self.host_id, sid,
                             stream.checkpoint["sequence"])

