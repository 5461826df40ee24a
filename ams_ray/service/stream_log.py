"""A stream's durable log on any fsspec store: numbered segments and a manifest.

Object stores have no append, so the log is a folder of immutable objects:

* ``seg-00000042.log``: one write's records (`ams_ray.wire.log_framing`), numbered in the
  order written. A labelled chunk is one segment; an acknowledged packet is another.
* ``snapshot-00000017.ams``: the model at packet 17 (`StreamState`), written only when
  replaying packets would cost more than reading it.
* ``manifest.json``: the first segment still needed and the current snapshot. Written last
  and atomically, when compaction drops segments or a snapshot replaces packets; the
  objects it stops naming are removed only after it is written.

A restore reads the manifest, the snapshot and every segment from the manifest's first, in
number order. A torn tail of the newest segment (a write cut short) is cut back to its last
whole record, so the next segment can follow it; any other damage is refused by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.wire.log_framing import LogDamaged, frame, parse

MANIFEST = "manifest.json"
_SEGMENT = re.compile(r"^seg-(\d{8})\.log$")
FORMAT = 1


def segment_name(number: int) -> str:
    return f"seg-{number:08d}.log"


def snapshot_name(packet_sequence: int) -> str:
    return f"snapshot-{packet_sequence:08d}.ams"


@dataclass(frozen=True)
class LogContents:
    snapshot: bytes | None
    records: list[tuple[int, int, bytes]]  # (segment, kind, payload) in the order written
    repaired: str | None  # a segment whose torn tail was cut back, if any


class StreamLog:
    def __init__(self, store: CheckpointStore, stream_id: str) -> None:
        self.store, self.stream_id = store, stream_id
        self.first_segment = 1  # the manifest's: segments before it are dropped
        self.next_segment = 1
        self.snapshot: str | None = None
        self.bytes_written = 0  # everything this process put in the store for the stream

    def read(self) -> LogContents:
        """Everything a restore needs, oldest first; also positions the log after its last
        segment. Raises LogDamaged naming the object that is not what was written."""
        manifest = self._read_manifest()
        self.first_segment, self.snapshot = manifest.get("first_segment", 1), manifest.get("snapshot")
        snapshot = None
        if self.snapshot is not None:
            snapshot = self.store.get(self.stream_id, self.snapshot)
            if snapshot is None:
                raise LogDamaged(f"the manifest of stream {self.stream_id} names {self.snapshot}, which is missing")
        names = list(self.store.listing(self.stream_id))
        numbers = sorted(n for n in map(self._number, names) if n is not None and n >= self.first_segment)
        self._remove_leftovers(names)
        records, repaired = [], None
        for number in numbers:
            name = segment_name(number)
            data = self.store.get(self.stream_id, name) or b""
            parsed = parse(data, f"{name} of stream {self.stream_id}", newest=number == numbers[-1])
            records += [(number, kind, payload) for kind, payload in parsed.records]
            if parsed.torn:
                self._cut_back(name, data[:parsed.complete_bytes])
                repaired = name
        self.next_segment = (numbers[-1] + 1) if numbers else self.first_segment
        return LogContents(snapshot, records, repaired)

    def _read_manifest(self) -> dict:
        data = self.store.get(self.stream_id, MANIFEST)
        if data is None:
            return {}
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            raise LogDamaged(f"{MANIFEST} of stream {self.stream_id} is not JSON ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise LogDamaged(f"{MANIFEST} of stream {self.stream_id} is format {manifest.get('format')}, this build "
                             f"reads {FORMAT}")
        return manifest

    def _remove_leftovers(self, names: list[str]) -> None:
        """Objects the manifest stopped naming before a crash kept them from being removed."""
        stale = [name for name in names
                 if (self._number(name) or self.first_segment) < self.first_segment
                 or (name.startswith("snapshot-") and name != self.snapshot)]
        self.store.remove(self.stream_id, stale)

    @staticmethod
    def _number(name: str) -> int | None:
        match = _SEGMENT.match(name)
        return int(match.group(1)) if match else None

    def _cut_back(self, name: str, whole: bytes) -> None:
        """Keep a torn segment's whole records (or nothing), so that it is no longer torn when
        later segments follow it."""
        if whole:
            self.store.put(self.stream_id, name, whole)
        else:
            self.store.remove(self.stream_id, [name])

    def append(self, records: list[tuple[int, bytes]]) -> int:
        """Write `records` ((kind, payload)) as the next segment; returns its number."""
        number = self.next_segment
        data = b"".join(frame(kind, payload) for kind, payload in records)
        self.store.put(self.stream_id, segment_name(number), data)
        self.next_segment += 1
        self.bytes_written += len(data)
        return number

    def commit(self, first_segment: int, snapshot: tuple[int, bytes] | None = None) -> None:
        """Drop the segments before `first_segment` and, with `snapshot` ((packet sequence,
        bytes)), make it the model's base: snapshot first, then the manifest, then removals."""
        old_snapshot = self.snapshot
        if snapshot is not None:
            sequence, data = snapshot
            self.snapshot = snapshot_name(sequence)
            self.store.put(self.stream_id, self.snapshot, data)
            self.bytes_written += len(data)
        dropped = range(self.first_segment, first_segment)
        manifest = json.dumps({"format": FORMAT, "stream": self.stream_id, "first_segment": first_segment,
                               "snapshot": self.snapshot}).encode()
        self.store.put(self.stream_id, MANIFEST, manifest)
        self.bytes_written += len(manifest)
        self.first_segment = first_segment
        gone = [segment_name(n) for n in dropped]
        if old_snapshot is not None and old_snapshot != self.snapshot:
            gone.append(old_snapshot)
        self.store.remove(self.stream_id, gone)

    def footprint_bytes(self) -> int:
        """What the stream occupies in the store now."""
        return sum(self.store.listing(self.stream_id).values())
