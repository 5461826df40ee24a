"""Records in an append-only log segment, each checked on its own.

A segment is a run of records: ``b"AR" | u8 kind | u32 payload length | u32 crc32 of those
7 bytes | u32 crc32 of the payload | payload``. The header has its own checksum so that a
reader can tell the two ways a segment goes wrong apart:

* a *torn tail*: the writer died (or the store returned a short object) part-way through the
  last record. Every byte present is one the writer wrote, so each complete record still
  checks; the incomplete one is dropped and the log restores to the record before it.
* *damage*: a record that is complete but fails a checksum, or bytes that are not a record
  at all. That is refused with the segment's name and the byte offset, never half-applied.

A torn tail can only be at the end of the newest segment; anywhere else it is damage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ams_ray.wire.stream_state import StreamStateError

_MAGIC = b"AR"
_HEAD = struct.Struct("<2sBI")
_CHECKS = struct.Struct("<II")
PREFIX_BYTES = _HEAD.size + _CHECKS.size


class LogDamaged(StreamStateError):
    """A segment holds bytes that are not what was written; names the segment and the offset."""


@dataclass(frozen=True)
class ParsedSegment:
    records: list[tuple[int, bytes]]  # (kind, payload), in the order written
    complete_bytes: int  # length of the prefix that holds whole records
    torn: bool  # an incomplete record followed them (dropped)


def frame(kind: int, payload: bytes) -> bytes:
    """One record, ready to append."""
    head = _HEAD.pack(_MAGIC, kind, len(payload))
    return head + _CHECKS.pack(zlib.crc32(head), zlib.crc32(payload)) + payload


def parse(data: bytes, name: str, newest: bool) -> ParsedSegment:
    """The records of segment `name`. `newest`: it is the log's last segment, whose tail may be
    torn; in any other segment an incomplete record is damage."""
    records: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        head = data[offset:offset + PREFIX_BYTES]
        if len(head) < PREFIX_BYTES:
            return _torn(records, offset, name, newest)
        magic, kind, length = _HEAD.unpack_from(head)
        head_crc, payload_crc = _CHECKS.unpack_from(head, _HEAD.size)
        if magic != _MAGIC or zlib.crc32(head[:_HEAD.size]) != head_crc:
            raise LogDamaged(f"segment {name} is damaged at byte {offset}: a record header fails its checksum")
        end = offset + PREFIX_BYTES + length
        if end > len(data):
            return _torn(records, offset, name, newest)
        payload = bytes(data[offset + PREFIX_BYTES:end])
        if zlib.crc32(payload) != payload_crc:
            raise LogDamaged(f"segment {name} is damaged at byte {offset}: a {length}-byte record fails its checksum")
        records.append((kind, payload))
        offset = end
    return ParsedSegment(records, offset, torn=False)


def _torn(records: list[tuple[int, bytes]], offset: int, name: str, newest: bool) -> ParsedSegment:
    if not newest:
        raise LogDamaged(f"segment {name} is damaged at byte {offset}: it ends inside a record, and only the "
                         "newest segment may")
    return ParsedSegment(records, offset, torn=True)
