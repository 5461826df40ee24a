"""The side of a TrainerHost that opens and closes streams as devices come and go.

A device in the field shows up when it likes (`serve/ingress.py`): its stream opens when
its device first calls (from its checkpoint, if any), restarts from the pretrained model
when the device fetches it, and closes after `idle_retire_s` without a call, keeping its
state. Mixed into `TrainerHost`, whose stream table it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class DeviceStreams:
    def device_started(self, stream_id: str) -> dict:
        """A device fetched the pretrained model to start from: open its stream (resuming its
        checkpoint) and restart the stream's model from version 0 too, so the next packet fits.
        Returns what the device should know about the stream."""
        self._opened(stream_id).distiller.restart_from_pretrained()
        return self.stream_status(stream_id)

    def stream_status(self, stream_id: str) -> dict:
        """Where the stream stands (opening it, from its checkpoint, if it was closed). A device
        that has sent its last chunk waits while `pending` > 0 or a packet above the one it
        holds (`packet_sequence`) is still to come."""
        stream = self._opened(stream_id)
        s = stream.session.stats
        return {"stream_id": stream_id, "host": self.host_id, "resumed_from_packet": stream.resumed_from,
                "packet_sequence": stream.distiller.sequence, "model_version": stream.distiller.version,
                "chunk_sequence": stream.submitted, "chunks": s.chunks, "rounds": s.rounds,
                "duplicate_chunks": s.duplicate_chunks, "missing_chunks": s.missing_chunks, "resyncs": s.resyncs,
                "sampling_rate_fps": stream.session.sampling_rate_fps, "label_backlog": len(stream.backlog),
                "pending": stream.pending,
                "checkpoint": dict(stream.checkpoint)}

    def open_streams(self) -> list[str]:
        return sorted(self.streams)

    def _opened(self, stream_id: str):
        """A stream of this host, opened (from its checkpoint, if any) when a device first shows up."""
        if stream_id not in self.streams:
            self.streams[stream_id] = self._new_stream(stream_id, None)
            self._ensure_retiring()
        stream = self.streams[stream_id]
        stream.last_activity = time.monotonic()
        self._ensure_worker(stream)
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
                    del self.streams[sid]  # its log already holds every labelled chunk and applied packet
                    self.retired += 1
                    log.info("host %s: retired idle stream %s (its log holds packet %d)", self.host_id, sid,
                             stream.checkpoint["sequence"])

