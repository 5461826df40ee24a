"""Everything the server knows about one stream, as one serialisable record.

A stream is data, not a process: whichever trainer hosts a stream can write its
`StreamState` after every packet the device applied and any trainer, on any node, can
carry on from it. It holds the mirror of the weights the device runs and their version,
the packet and chunk sequence numbers, the ASR/ATR state, the batch sampler's RNG and the
labelled window (the newest `window_s` of it, see `StreamSession.snapshot`).

Not kept: the Adam moments (every round starts a fresh optimiser anyway), torch's RNG
(training draws its batches from the numpy RNG kept here; the student runs in eval mode)
and the rate/period histories, which only feed reports.

Wire format: ``b"AMSS" | u8 version | u32 header length | u32 crc32 | header JSON |
zstd(npz)``. The CRC covers header and body, so a damaged checkpoint is refused with a
clear error instead of resuming a stream from garbage.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

MAGIC = b"AMSS"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBII")


class StreamStateError(ValueError):
    """Bytes that are not a usable stream state: corrupt, foreign or for another model."""


@dataclass
class StreamState:
    stream_id: str
    fingerprint: str  # of the trainable-parameter layout; a state only restores into the same model
    version: int  # model version the mirror holds (0: pretrained)
    packet_sequence: int  # last update packet sent
    chunk_sequence: int  # last uplink chunk accepted
    mirror: list[np.ndarray]  # float32, one per trainable tensor, in layout order
    sampling_rate_fps: float
    training_period_factor: int
    next_training_due_s: float
    rng_state: dict
    window_times_s: np.ndarray  # float64 (N,)
    window_frames: np.ndarray  # uint8 (N, H, W, 3)
    window_labels: np.ndarray  # uint8 (N, H, W)
    last_label: np.ndarray | None  # the newest label map, which the next chunk's phi compares against
    counters: dict[str, int] = field(default_factory=dict)

    def to_bytes(self, level: int = 3) -> bytes:
        header = {
            "stream": self.stream_id, "fingerprint": self.fingerprint, "version": self.version,
            "packet_sequence": self.packet_sequence, "chunk_sequence": self.chunk_sequence,
            "sampling_rate_fps": self.sampling_rate_fps, "training_period_factor": self.training_period_factor,
            "next_training_due_s": self.next_training_due_s, "rng_state": self.rng_state,
            "counters": self.counters, "tensors": len(self.mirror),
        }
        arrays = {f"mirror_{i}": a for i, a in enumerate(self.mirror)}
        arrays.update(window_times_s=self.window_times_s, window_frames=self.window_frames,
                      window_labels=self.window_labels)
        if self.last_label is not None:
            arrays["last_label"] = self.last_label
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        body = zstandard.ZstdCompressor(level=level).compress(buffer.getvalue())
        head = json.dumps(header, separators=(",", ":")).encode()
        crc = zlib.crc32(head + body)
        return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head), crc) + head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> "StreamState":
        if len(data) < _PREFIX.size or data[:4] != MAGIC:
            raise StreamStateError("not an ams-ray stream state (bad magic): the checkpoint is from another tool")
        _, version, head_len, crc = _PREFIX.unpack_from(data)
        if version != FORMAT_VERSION:
            raise StreamStateError(f"stream state format {version}, this build reads {FORMAT_VERSION}")
        rest = data[_PREFIX.size :]
        if zlib.crc32(rest) != crc or len(rest) < head_len:
            raise StreamStateError("stream state fails its checksum: the checkpoint is truncated or corrupt")
        header = json.loads(rest[:head_len])
        arrays = np.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(rest[head_len:])), allow_pickle=False)
        return cls(
            stream_id=header["stream"], fingerprint=header["fingerprint"], version=header["version"],
            packet_sequence=header["packet_sequence"], chunk_sequence=header["chunk_sequence"],
            mirror=[arrays[f"mirror_{i}"] for i in range(header["tensors"])],
            sampling_rate_fps=header["sampling_rate_fps"], training_period_factor=header["training_period_factor"],
            next_training_due_s=header["next_training_due_s"], rng_state=header["rng_state"],
            window_times_s=arrays["window_times_s"], window_frames=arrays["window_frames"],
            window_labels=arrays["window_labels"],
            last_label=arrays["last_label"] if "last_label" in arrays.files else None,
            counters=header["counters"],
        )
