"""The uplink message: one H.264 chunk of sampled frames, in a transport-neutral envelope.

Every message names its stream and carries a sequence number, so a receiver can tell a
duplicate (same number again) from a gap (a number skipped) whatever carries the bytes:
a Ray object today, an HTTP body from a real device later. It also reports which model the
device holds (version and last applied packet), so a server that lost state, e.g. a trainer
restored from an older checkpoint, learns what the device runs before it sends anything,
and which model version it ran on each sampled frame: an update that reached it in the
middle of a chunk served only the frames after it, and the server, scoring what adapting
bought the device, must not credit the new model for frames the old one saw.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cached_property

_MAGIC = b"AMSC"
_PREFIX = struct.Struct("<4sI")


@dataclass(frozen=True)
class SampleChunk:
    stream_id: str
    sequence: int
    frame_indices: tuple[int, ...]
    times_s: tuple[float, ...]
    h264: bytes
    model_version: int = 0  # the device's model version when it sent the chunk (0: pretrained)
    last_packet: int = 0  # sequence of the last update packet it applied (0: none)
    frame_versions: tuple[int, ...] = ()  # the model version it ran on each frame (empty: not reported)

    @property
    def num_bytes(self) -> int:
        """What the uplink pays: the video bitstream plus the envelope."""
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        """Serialised once: the sender both counts and sends these bytes."""
        header = json.dumps(
            {"stream": self.stream_id, "seq": self.sequence, "frames": self.frame_indices, "times": self.times_s,
             "ver": self.model_version, "pkt": self.last_packet, "vers": self.frame_versions},
            separators=(",", ":"),
        ).encode()
        return _PREFIX.pack(_MAGIC, len(header)) + header + self.h264

    @classmethod
    def from_bytes(cls, data: bytes) -> "SampleChunk":
        if len(data) < _PREFIX.size or data[:4] != _MAGIC:
            raise ValueError("not an ams-ray sample chunk (bad magic); the upload is corrupt or from another tool")
        _, header_len = _PREFIX.unpack_from(data)
        header = json.loads(data[_PREFIX.size : _PREFIX.size + header_len])
        chunk = cls(header["stream"], header["seq"], tuple(header["frames"]), tuple(header["times"]),
                    data[_PREFIX.size + header_len :], header.get("ver", 0), header.get("pkt", 0),
                    tuple(header.get("vers", ())))
        chunk.__dict__["_encoded"] = bytes(data)  # the bytes as they came: kept (e.g. in a log) without re-encoding
        return chunk
