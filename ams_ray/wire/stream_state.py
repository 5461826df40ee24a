"""A snapshot of one stream's model: the weights the device holds, with the stream's progress.

A stream's durable log (`ams_ray.service.stream_log`) keeps its window as chunks and its
model as the packets the device applied. When `restart_from_pretrained` is off, each packet
builds on the last, and replaying them all would cost more than reading the weights; then a
snapshot is written and the packets before it are dropped. A snapshot holds no window.

Wire format: ``b"AMSS" | u8 version | u32 header length | u32 crc32 | header JSON |
zstd(npz of the mirror)``. The CRC covers header and body, so a damaged snapshot is refused
with a clear error instead of resuming a stream from garbage. Format 1 (a whole labelled
window per checkpoint, rewritten after every packet) is no longer read.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import zstandard

from ams_ray.wire.stream_records import Progress

MAGIC = b"AMSS"
FORMAT_VERSION = 2
_PREFIX = struct.Struct("<4sBII")


class StreamStateError(ValueError):
    """Bytes that are not a usable stream state: corrupt, foreign or for another model."""


@dataclass
class StreamState:
    stream_id: str
    fingerprint: str  # of the trainable-parameter layout; a state only restores into the same model
    progress: Progress
    mirror: list[np.ndarray]  # float32, one per trainable tensor, in layout order: the device's weights

    def to_bytes(self, level: int = 3) -> bytes:
        header = {"stream": self.stream_id, "fingerprint": self.fingerprint, "progress": asdict(self.progress),
                  "tensors": len(self.mirror)}
        buffer = io.BytesIO()
        np.savez(buffer, **{f"mirror_{i}": a for i, a in enumerate(self.mirror)})
        body = zstandard.ZstdCompressor(level=level).compress(buffer.getvalue())
        head = json.dumps(header, separators=(",", ":")).encode()
        return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head), zlib.crc32(head + body)) + head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> "StreamState":
        if len(data) < _PREFIX.size or data[:4] != MAGIC:
            raise StreamStateError("not an ams-ray stream state (bad magic): the checkpoint is from another tool")
        _, version, head_len, crc = _PREFIX.unpack_from(data)
        if version != FORMAT_VERSION:
            raise StreamStateError(f"stream state format {version}, this build reads {FORMAT_VERSION}")
        rest = data[_PREFIX.size:]
        if zlib.crc32(rest) != crc or len(rest) < head_len:
            raise StreamStateError("stream state fails its checksum: the checkpoint is truncated or corrupt")
        header = json.loads(rest[:head_len])
        arrays = np.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(rest[head_len:])), allow_pickle=False)
        return cls(stream_id=header["stream"], fingerprint=header["fingerprint"],
                   progress=Progress(**header["progress"]),
                   mirror=[arrays[f"mirror_{i}"] for i in range(header["tensors"])])
