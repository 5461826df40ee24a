"""What a stream's durable log holds: the chunks it learned from and the packets it sent.

The device's model is the pretrained weights plus the packets it applied, and the server's
window is the chunks it labelled; so a stream is kept as those, in the form they crossed
the wire, each written once:

* `LabelledChunk`: an uploaded chunk's H.264 bytes as they arrived, its frame numbers and
  times, and the teacher's label maps (`label_codec`). Written when the chunk is labelled.
* `LoggedPacket`: an update packet as it went down, with the stream's `Progress` at the
  moment the packet was made. Written when the device acknowledges the packet.

`Progress` is everything else a stream needs to carry on (numbering, sampler RNG, ASR/ATR
state, counters): a few hundred bytes, where the window is megabytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

import numpy as np

from ams_ray.wire.label_codec import decode_labels, encode_labels

CHUNK = 1
PACKET = 2
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class Progress:
    """A stream's numbering and controllers, as they stood when a packet was made."""

    packet_sequence: int  # the packet this progress belongs to (0: none yet)
    version: int  # the model version that packet leads to
    chunk_sequence: int  # the newest chunk the stream had taken
    sampling_rate_fps: float
    training_period_factor: int
    next_training_due_s: float
    rng_state: dict  # the batch sampler's numpy bit generator
    counters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Progress":
        return cls(**json.loads(data))


@dataclass(frozen=True)
class LabelledChunk:
    sequence: int
    frame_indices: tuple[int, ...]
    times_s: tuple[float, ...]
    h264: bytes
    labels: np.ndarray  # (N, H, W) uint8

    def to_bytes(self) -> bytes:
        head = json.dumps({"seq": self.sequence, "frames": list(self.frame_indices), "times": list(self.times_s)},
                          separators=(",", ":")).encode()
        return _LENGTH.pack(len(head)) + head + _LENGTH.pack(len(self.h264)) + self.h264 + encode_labels(self.labels)

    @classmethod
    def from_bytes(cls, data: bytes) -> "LabelledChunk":
        (head_len,) = _LENGTH.unpack_from(data)
        head = json.loads(data[_LENGTH.size:_LENGTH.size + head_len])
        at = _LENGTH.size + head_len
        (video_len,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        return cls(head["seq"], tuple(head["frames"]), tuple(head["times"]), bytes(data[at:at + video_len]),
                   decode_labels(data[at + video_len:]))


@dataclass(frozen=True)
class LoggedPacket:
    packet: bytes  # exactly as sent to the device
    progress: Progress

    def to_bytes(self) -> bytes:
        progress = self.progress.to_json()
        return _LENGTH.pack(len(progress)) + progress + self.packet

    @classmethod
    def from_bytes(cls, data: bytes) -> "LoggedPacket":
        (progress_len,) = _LENGTH.unpack_from(data)
        end = _LENGTH.size + progress_len
        return cls(bytes(data[end:]), Progress.from_json(data[_LENGTH.size:end]))
