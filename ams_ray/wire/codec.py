"""The update packet: which coordinates of the student changed, by how much, compressed.

A packet carries *deltas* against a model version the device holds (`base_version`; 0 is
the pretrained model), so the device can check it is patching the model the server
trained from. Two encodings:

- ``ams``: the original's layout, a packed bit mask over each touched tensor plus fp16
  values, gzip-compressed. The baseline.
- ``compact``: sorted indices as LEB128 varint gaps, values as int8 with one fp32 scale per
  tensor, zstd-compressed. Quantising means the device holds slightly different weights
  than the server trained, so the server applies the *decoded* packet to its own mirror of
  the device model (see `distill`), and both stay bit-identical.

The wire format is transport-neutral bytes: ``b"AMSU" | u8 version | u32 header length |
u32 crc32 | header JSON | body``; the CRC covers header and body, and the header names the
stream, sequence number and model fingerprint, so duplicates, gaps, corruption and packets
for another model are all detectable without trusting the transport.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import zstandard

MAGIC = b"AMSU"
WIRE_VERSION = 1
_PREFIX = struct.Struct("<4sBII")
Encoding = Literal["ams", "compact"]


class PacketError(ValueError):
    """A packet that must not be applied: corrupt, for another model, or out of order."""


@dataclass(frozen=True)
class ParamLayout:
    """Ordered names and shapes of the tensors an update can touch, shared by both ends."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "ParamLayout":
        return cls(tuple(arrays), tuple(tuple(a.shape) for a in arrays.values()))

    @property
    def fingerprint(self) -> str:
        text = ";".join(f"{n}:{'x'.join(map(str, s))}" for n, s in zip(self.names, self.shapes))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def numel(self, index: int) -> int:
        return int(np.prod(self.shapes[index], dtype=np.int64))


@dataclass
class TensorDelta:
    index: int  # position in the ParamLayout
    coords: np.ndarray | None  # sorted flat int64 indices; None means every coordinate
    values: np.ndarray  # float32 deltas, one per coordinate


@dataclass
class UpdatePacket:
    stream_id: str
    sequence: int
    base_version: int
    version: int
    fingerprint: str
    tensors: list[TensorDelta] = field(default_factory=list)
    sampling_rate_fps: float | None = None

    @property
    def num_coords(self) -> int:
        return int(sum(t.values.size for t in self.tensors))


# ---------------------------------------------------------------------------- varints
def varint_encode(values: np.ndarray) -> bytes:
    """LEB128 of non-negative integers, vectorised (no per-value Python loop)."""
    v = values.astype(np.uint64)
    sizes = np.ones(v.size, dtype=np.int64)
    for k in range(1, 10):
        sizes += v >= np.uint64(1 << (7 * k))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    for k in range(int(sizes.max(initial=0))):
        has = sizes > k
        byte = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def varint_decode(data: bytes, count: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero((raw & 0x80) == 0)
    if ends.size != count:
        raise PacketError(f"index stream holds {ends.size} varints, header says {count}")
    if count == 0:
        return np.zeros(0, np.int64)
    starts = np.concatenate([[0], ends[:-1] + 1])
    position = np.arange(raw.size) - np.repeat(starts, ends - starts + 1)
    parts = (raw & 0x7F).astype(np.uint64) << (np.uint64(7) * position.astype(np.uint64))
    return np.add.reduceat(parts, starts).astype(np.int64)


# ---------------------------------------------------------------------------- bodies
def _encode_compact(packet: UpdatePacket) -> tuple[list, bytes]:
    table, gaps, quantised = [], [], []
    for t in packet.tensors:
        scale = float(np.abs(t.values).max(initial=0.0)) / 127.0
        q = np.round(t.values / scale).astype(np.int8) if scale > 0 else np.zeros(t.values.size, np.int8)
        quantised.append(q)
        if t.coords is not None:
            gaps.append(np.diff(t.coords, prepend=-1) - 1)
        table.append([t.index, int(t.values.size), t.coords is None, np.float32(scale).item()])
    index_bytes = varint_encode(np.concatenate(gaps)) if gaps else b""
    body = struct.pack("<I", len(index_bytes)) + index_bytes + b"".join(q.tobytes() for q in quantised)
    return table, zstandard.ZstdCompressor(level=19).compress(body)


def _decode_compact(table: list, body: bytes) -> list[TensorDelta]:
    raw = zstandard.ZstdDecompressor().decompress(body)
    (index_len,) = struct.unpack_from("<I", raw)
    sparse_counts = [count for _, count, dense, _ in table if not dense]
    gaps = varint_decode(raw[4 : 4 + index_len], int(sum(sparse_counts)))
    values = np.frombuffer(raw, dtype=np.int8, offset=4 + index_len)
    tensors, g, v = [], 0, 0
    for index, count, dense, scale in table:
        coords = None
        if not dense:
            coords = np.cumsum(gaps[g : g + count] + 1) - 1
            g += count
        tensors.append(TensorDelta(index, coords, values[v : v + count].astype(np.float32) * np.float32(scale)))
        v += count
    return tensors


def _encode_ams(packet: UpdatePacket, layout: ParamLayout) -> tuple[list, bytes]:
    table, masks, values = [], [], []
    for t in packet.tensors:
        mask = np.ones(layout.numel(t.index), dtype=bool)
        if t.coords is not None:
            mask[:] = False
            mask[t.coords] = True
        masks.append(np.packbits(mask).tobytes())
        values.append(t.values.astype(np.float16).tobytes())
        table.append([t.index, int(t.values.size)])
    return table, gzip.compress(b"".join(masks) + b"".join(values), mtime=0)


def _decode_ams(table: list, body: bytes, layout: ParamLayout) -> list[TensorDelta]:
    raw = gzip.decompress(body)
    offset, coords_list = 0, []
    for index, count in table:
        numel = layout.numel(index)
        nbytes = (numel + 7) // 8
        mask = np.unpackbits(np.frombuffer(raw, np.uint8, nbytes, offset), count=numel).astype(bool)
        coords = np.flatnonzero(mask)
        if coords.size != count:
            raise PacketError(f"mask of tensor {layout.names[index]} has {coords.size} bits set, header says {count}")
        coords_list.append(None if count == numel else coords)
        offset += nbytes
    tensors = []
    for (index, count), coords in zip(table, coords_list):
        vals = np.frombuffer(raw, np.float16, count, offset).astype(np.float32)
        tensors.append(TensorDelta(index, coords, vals))
        offset += 2 * count
    return tensors


# ---------------------------------------------------------------------------- packets
def encode_packet(packet: UpdatePacket, layout: ParamLayout, encoding: Encoding = "compact") -> bytes:
    if packet.fingerprint != layout.fingerprint:
        raise PacketError("packet fingerprint does not match the layout it is encoded with")
    if encoding == "compact":
        table, body = _encode_compact(packet)
    elif encoding == "ams":
        table, body = _encode_ams(packet, layout)
    else:
        raise ValueError(f"unknown packet encoding {encoding!r}; use 'compact' or 'ams'")
    header = json.dumps(
        {
            "stream": packet.stream_id,
            "seq": packet.sequence,
            "base": packet.base_version,
            "version": packet.version,
            "model": packet.fingerprint,
            "encoding": encoding,
            "rate": packet.sampling_rate_fps,
            "tensors": table,
        },
        separators=(",", ":"),
    ).encode()
    crc = zlib.crc32(header + body)
    return _PREFIX.pack(MAGIC, WIRE_VERSION, len(header), crc) + header + body


def packet_numbers(data: bytes) -> tuple[int, int, int]:
    """(sequence, base version, version) from a packet's header, without decoding its deltas:
    what a log needs to know which packets a model is built from."""
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        raise PacketError("not an ams-ray update packet")
    _, _, header_len, _ = _PREFIX.unpack_from(data)
    header = json.loads(data[_PREFIX.size:_PREFIX.size + header_len])
    return header["seq"], header["base"], header["version"]


def decode_packet(data: bytes, layout: ParamLayout) -> UpdatePacket:
    """Parse and verify a packet; raises PacketError naming what is wrong."""
    if len(data) < _PREFIX.size:
        raise PacketError(f"packet of {len(data)} bytes is too short to hold a header")
    magic, version, header_len, crc = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"not an ams-ray update packet (magic {magic!r}, expected {MAGIC!r})")
    if version != WIRE_VERSION:
        raise PacketError(f"packet wire version {version} unsupported (this build reads {WIRE_VERSION}); upgrade the edge")
    rest = data[_PREFIX.size :]
    if zlib.crc32(rest) != crc:
        raise PacketError(f"packet checksum mismatch ({len(data)} bytes): corrupt or truncated in transit")
    header = json.loads(rest[:header_len])
    if header["model"] != layout.fingerprint:
        raise PacketError(
            f"packet is for model {header['model']}, this device runs {layout.fingerprint}: "
            "the server and the edge hold different student architectures"
        )
    body = rest[header_len:]
    try:
        if header["encoding"] == "compact":
            tensors = _decode_compact(header["tensors"], body)
        elif header["encoding"] == "ams":
            tensors = _decode_ams(header["tensors"], body, layout)
        else:
            raise PacketError(f"unknown packet encoding {header['encoding']!r}")
    except (zstandard.ZstdError, OSError, ValueError, IndexError, struct.error) as exc:
        if isinstance(exc, PacketError):
            raise
        raise PacketError(f"packet body does not decode: {exc}") from exc
    for t in tensors:
        if not 0 <= t.index < len(layout.names):
            raise PacketError(f"packet names tensor #{t.index}, the model has {len(layout.names)}")
        if t.coords is not None and t.coords.size and t.coords[-1] >= layout.numel(t.index):
            raise PacketError(f"packet coordinate out of range for tensor {layout.names[t.index]}")
    return UpdatePacket(
        stream_id=header["stream"],
        sequence=header["seq"],
        base_version=header["base"],
        version=header["version"],
        fingerprint=header["model"],
        tensors=tensors,
        sampling_rate_fps=header["rate"],
    )


def apply_deltas(arrays: Sequence[np.ndarray], tensors: Sequence[TensorDelta]) -> None:
    """Add decoded deltas in place to flat-indexable arrays ordered as the layout."""
    for t in tensors:
        flat = arrays[t.index].reshape(-1)
        if t.coords is None:
            flat += t.values
        else:
            flat[t.coords] += t.values
