"""Uplink chunks from the network, checked before any stream sees them.

An HTTP body is untrusted: its envelope may be garbage, it may claim another stream or far
too many frames, and its H.264 may be crafted to crash or exhaust the decoder. So the
envelope is parsed and bounded here, and the bitstream is decoded once in a separate
process, `IsolatedDecoder`, with the frame count and frame size bounded as frames come out.
A decoder that crashes or hangs costs that one request (and a fresh worker process), never
the ingress or a trainer holding other streams' state.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass
from typing import Callable

import psutil

from ams_ray.data.video import FrameSizeError, VideoError, decode_chunk
from ams_ray.wire.messages import SampleChunk


class ChunkRejected(ValueError):
    """The chunk is refused before it reaches its stream; `kind` names the problem for metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ChunkLimits:
    height: int
    width: int
    max_frames: int = 64  # 2 fps (the ASR ceiling) x 10 s is 20; the rest is headroom
    max_bytes: int = 2 * 1024 * 1024
    decode_timeout_s: float = 10.0


def parse_envelope(data: bytes, stream_id: str, limits: ChunkLimits) -> SampleChunk:
    """The chunk's envelope, checked: it is for `stream_id`, its lists agree, its counts are bounded."""
    if len(data) > limits.max_bytes:
        raise ChunkRejected("oversized_chunk", f"chunk of {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    try:
        chunk = SampleChunk.from_bytes(data)
        valid = (isinstance(chunk.sequence, int) and chunk.sequence >= 1 and isinstance(chunk.model_version, int)
                 and isinstance(chunk.last_packet, int) and len(chunk.frame_indices) == len(chunk.times_s)
                 and all(isinstance(i, int) and i >= 0 for i in chunk.frame_indices)
                 and all(isinstance(t, (int, float)) for t in chunk.times_s)
                 and len(chunk.frame_versions) in (0, len(chunk.frame_indices))
                 and all(isinstance(v, int) and v >= 0 for v in chunk.frame_versions))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ChunkRejected("corrupt_chunk", f"the body is not a sample chunk: {exc}") from exc
    if not valid:
        raise ChunkRejected("corrupt_chunk", "the chunk's envelope is malformed (sequence, version, frame indices, "
                                             "times or frame versions of the wrong type, or their counts differ)")
    if chunk.stream_id != stream_id:
        raise ChunkRejected("wrong_stream", f"the chunk names stream {chunk.stream_id!r}, uploaded to {stream_id!r}")
    if not 1 <= len(chunk.frame_indices) <= limits.max_frames:
        raise ChunkRejected("corrupt_chunk", f"a chunk carries 1 to {limits.max_frames} frames, this one says "
                                             f"{len(chunk.frame_indices)}")
    return chunk


def count_frames(h264: bytes, expected: int, height: int, width: int) -> int:
    """Decode a bitstream with `decode_chunk`'s bounds: `expected` frames of `height` x `width`."""
    try:
        return len(decode_chunk(h264, expected, (height, width)))
    except FrameSizeError as exc:
        raise ChunkRejected("wrong_frame_shape", f"{exc}: this service runs {height}x{width}") from exc
    except VideoError as exc:
        raise ChunkRejected("corrupt_chunk", f"the H.264 bitstream does not decode to its frames: {exc}") from exc


def _serve(connection, decode: Callable[[bytes, int, int, int], int]) -> None:
    """The worker process: decode requests until the pipe closes."""
    while True:
        try:
            h264, expected, height, width = connection.recv()
        except EOFError:
            return
        try:
            connection.send(decode(h264, expected, height, width))
        except ChunkRejected as exc:
            connection.send((exc.kind, str(exc)))


class IsolatedDecoder:
    """One worker process that decodes untrusted bitstreams, replaced when it crashes or hangs.

    Requests go one at a time (a chunk decodes in milliseconds; devices send one per send
    period). `check` blocks: call it from a thread.
    """

    def __init__(self, limits: ChunkLimits, decode: Callable[[bytes, int, int, int], int] = count_frames) -> None:
        """`decode` runs in the worker; it must be importable by name (spawned, not forked)."""
        self.limits, self.decode = limits, decode
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")  # no forked copy of a threaded server
        self._process = None
        self._connection = None
        self.restarts = 0
        self._retired_cpu_s = 0.0

    def check(self, chunk: SampleChunk) -> None:
        """Raises ChunkRejected unless the chunk's bitstream decodes to its frames at the right size."""
        request = (chunk.h264, len(chunk.frame_indices), self.limits.height, self.limits.width)
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            try:
                self._connection.send(request)
                if not self._connection.poll(self.limits.decode_timeout_s):
                    self._replace()
                    raise ChunkRejected("decoder_timeout", f"decoding took over {self.limits.decode_timeout_s:g} s; "
                                                           "the chunk was dropped and the decoder restarted")
                reply = self._connection.recv()
            except (EOFError, OSError) as exc:
                self._replace()
                raise ChunkRejected("decoder_crashed", "the decoder process died on this chunk; it was restarted "
                                                       "and the chunk dropped") from exc
        if isinstance(reply, tuple):
            raise ChunkRejected(*reply)

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child, self.decode), daemon=True, name="ams-chunk-decoder")
        self._process.start()
        child.close()
        self._connection = parent

    def _replace(self) -> None:
        self._retired_cpu_s += self.cpu_seconds()
        self._process.kill()
        self._process.join(5.0)
        self._connection.close()
        self._process = self._connection = None
        self.restarts += 1

    def cpu_seconds(self) -> float:
        """CPU time of the worker processes so far: the live one's, plus those replaced."""
        live = 0.0
        if self._process is not None and self._process.is_alive():
            times = psutil.Process(self._process.pid).cpu_times()
            live = times.user + times.system
        return self._retired_cpu_s + live

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5.0)
            self._connection.close()
            self._process = self._connection = None
