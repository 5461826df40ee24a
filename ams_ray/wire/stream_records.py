"""What a stream's durable log holds: the chunks it took and the packets it sent.

The device's model is the pretrained weights plus the packets it applied, and the server's
window is the chunks it labelled; so a stream is kept as those, in the form they crossed
the wire, each written once:

* ACCEPTED: an uploaded chunk exactly as it arrived (`SampleChunk` bytes), written before
  the upload is answered, so a chunk the device was told is taken survives a crash while it
  waits for the teacher;
* LABELS (`ChunkLabels`): the teacher's label maps for it (`label_codec`), or none when the
  chunk was dropped unlabelled (shed, the teacher gave up), so a restore does not take it again;
* PACKET (`LoggedPacket`): an update packet as it went down, with the stream's `Progress`
  when it was made, written when the device acknowledges it.

`Progress` is everything else a stream needs to carry on (numbering, sampler RNG, ASR/ATR
state, counters): a few hundred bytes, where the window is megabytes. A restore pairs each
accepted chunk with its labels (`LabelledChunk`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

import numpy as np

from ams_ray.wire.label_codec import decode_labels, encode_labels

ACCEPTED = 1
PACKET = 2
LABELS = 3
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
class ChunkLabels:
    sequence: int
    labels: np.ndarray | None  # (N, H, W) uint8, or None: the chunk was dropped without labels

    def to_bytes(self) -> bytes:
        return _LENGTH.pack(self.sequence) + (encode_labels(self.labels) if self.labels is not None else b"")

    @classmethod
    def from_bytes(cls, data: bytes) -> "ChunkLabels":
        (sequence,) = _LENGTH.unpack_from(data)
        rest = data[_LENGTH.size:]
        return cls(sequence, decode_labels(rest) if rest else None)


@dataclass(frozen=True)
class LabelledChunk:
    """An accepted chunk with its labels: what a restored window is rebuilt from."""

    sequence: int
    frame_indices: tuple[int, ...]
    times_s: tuple[float, ...]
    h264: bytes
    labels: np.ndarray  # (N, H, W) uint8


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
