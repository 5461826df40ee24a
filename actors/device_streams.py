"""The side of a TrainerHost that opens and closes streams as devices come and go.

A device in the field shows up when it likes (`serve/ingress.py`): its stream opens when
its device first calls (from its checkpoint, if any), restarts from the pretrained model
when the device fetches it, and closes after `idle_retire_s` without a call, keeping its
state. In the service every call carries the stream's lease epoch from the stream
directory (`actors/stream_directory.py`): a newer epoch than the one held reopens the
stream from its log, an older one is refused with `LeaseLost` (the caller asks the
directory again), and `release` lets a stream go cleanly when the directory moves it.
Mixed into `TrainerHost`, whose stream table it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ams_ray.service.stream_lease import LeaseLost

ACK_WAIT_S = 10.0  # how long a moving stream waits for its device to acknowledge the packets made here
log = logging.getLogger(__name__)


class DeviceStreams:
    def device_started(self, stream_id: str, epoch: int | None = None) -> dict:
        """A device fetched the pretrained model to start from: open its stream (resuming its
        checkpoint) and restart the stream's model from version 0 too, so the next packet fits.
        Returns what the device should know about the stream."""
        self._opened(stream_id, epoch, entering=True).distiller.restart_from_pretrained()
        return self.stream_status(stream_id, epoch)

    def stream_status(self, stream_id: str, epoch: int | None = None) -> dict:
        """Where the stream stands (opening it, from its checkpoint, if it was closed). A device
        that has sent its last chunk waits while `pending` > 0 or a packet above the one it
        holds (`packet_sequence`) is still to come."""
        stream = self._opened(stream_id, epoch)
        s = stream.session.stats
        return {"stream_id": stream_id, "host": self.host_id, "epoch": stream.epoch,
                "resumed_from_packet": stream.resumed_from,
                "packet_sequence": stream.distiller.sequence, "model_version": stream.distiller.version,
                "chunk_sequence": stream.submitted, "chunks": s.chunks, "rounds": s.rounds,
                "duplicate_chunks": s.duplicate_chunks, "missing_chunks": s.missing_chunks, "resyncs": s.resyncs,
                "sampling_rate_fps": stream.session.sampling_rate_fps, "label_backlog": len(stream.backlog),
                "pending": stream.pending,
                "checkpoint": dict(stream.checkpoint)}

    def open_streams(self) -> list[str]:
        return sorted(self.streams)

    def held_streams(self) -> dict[str, int | None]:
        """Open streams and the lease epoch each is held at: what a restarted directory
        rebuilds its table from."""
        return {sid: stream.epoch for sid, stream in self.streams.items() if not stream.fenced}

    async def release(self, stream_id: str) -> dict:
        """Let the stream go to another host, losing nothing: no new chunks (callers are sent
        to the directory, which holds them until the move is done), the chunk being taken and
        its round finish, the device gets up to ACK_WAIT_S to acknowledge the packets made here
        (so the log holds every update it applied), the writes land, and the device's waiting
        poll is answered. Chunks still in the backlog are in the log as accepted: the new host
        labels them. Returns what the move cost."""
        began = time.monotonic()
        stream = self.streams.get(stream_id)
        if stream is None:
            return {"stream_id": stream_id, "held": False, "seconds": 0.0}
        stream.draining = True
        self.released[stream_id] = stream.epoch
        if stream.worker is not None and not stream.worker.done():
            await asyncio.wait({stream.worker}, timeout=self.settings.call_timeout_s)
        deadline = time.monotonic() + ACK_WAIT_S
        while not stream.settled and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.wrap_future(self.checkpoint_thread.submit(lambda: None))  # the stream's writes have landed
        await stream.outbox.close()
        self.streams.pop(stream_id, None)
        log.info("host %s: released stream %s at packet %d", self.host_id, stream_id, stream.distiller.sequence)
        return {"stream_id": stream_id, "held": True, "seconds": time.monotonic() - began,
                "unacknowledged": len(stream.journal.made), "left_in_backlog": len(stream.backlog)}

    async def release_all(self) -> list[dict]:
        """The service is stopping: every stream released at once, and none opened after."""
        self.stopping = True
        return list(await asyncio.gather(*(self.release(sid) for sid in list(self.streams))))

    def _opened(self, stream_id: str, epoch: int | None = None, entering: bool = False):
        """A stream of this host, opened (from its checkpoint, if any) when a device first shows
        up. `epoch`: the caller's lease for it (see the module's docstring); `entering`: the call
        brings something new (a chunk, a restart), which a stream on its way out refuses."""
        if self.stopping:
            raise LeaseLost(f"host {self.host_id} is stopping")
        stream = self.streams.get(stream_id)
        if stream is not None and (stream.fenced or (epoch is not None and (stream.epoch or 0) < epoch)):
            self._let_go(stream_id)  # its lease moved on: drop this copy, reopen below at the caller's epoch
            stream = None
        if stream is not None and epoch is not None and stream.epoch is not None and epoch < stream.epoch:
            raise LeaseLost(f"stream {stream_id} is held here at epoch {stream.epoch}, the call has {epoch}")
        if stream is not None and stream.draining and entering:
            raise LeaseLost(f"stream {stream_id} is moving off host {self.host_id}")
        let_go_at = self.released.get(stream_id, -1)
        if stream is None and let_go_at != -1 and (epoch is None or epoch <= (let_go_at or 0)):
            # A late call with the lease this host let go: the stream's next holder gets a newer one.
            raise LeaseLost(f"stream {stream_id} was released by host {self.host_id} at epoch {let_go_at}")
        if stream is None:
            stream = self.streams[stream_id] = self._new_stream(stream_id, self.label_keys.get(stream_id), epoch)
            # (the constructor raised LeaseLost if the lease moved on past `epoch`)
            self._ensure_retiring()
        stream.last_activity = time.monotonic()
        self._ensure_worker(stream)
        return stream

    def _let_go(self, stream_id: str) -> None:
        """Drop a stream this host no longer holds, without writing anything for it."""
        stream = self.streams.pop(stream_id)
        stream.draining = True
        if stream.worker is not None:
            stream.worker.cancel()
        asyncio.get_running_loop().create_task(stream.outbox.close())
        log.warning("host %s: let stream %s go (held at epoch %s; its lease moved on)", self.host_id, stream_id,
                    stream.epoch)

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

