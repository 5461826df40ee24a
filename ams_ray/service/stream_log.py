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
number order, ignoring a torn tail of the newest segment (a write cut short); any other
damage is refused by name. Reading changes nothing; the host that then writes the log
first cuts the torn tail back, so the next segment can follow it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.service.stream_lease import check_fence
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
    last_segment: int | None
    torn: tuple[str, bytes] | None  # the newest segment's name and its whole records, when its tail is torn
    leftovers: list[str]  # objects the manifest no longer names (a crash kept them from being removed)


class StreamLog:
    def __init__(self, store: CheckpointStore, stream_id: str, epoch: int | None = None) -> None:
        """`epoch`: the lease this writer holds (`ams_ray.service.stream_lease`); every write
        first checks it is still the stream's. None: an unfenced writer (a benchmark's hosts,
        placed once, never moved)."""
        self.store, self.stream_id, self.epoch = store, stream_id, epoch
        self.first_segment = 1  # the manifest's: segments before it are dropped
        self.next_segment = 1
        self.snapshot: str | None = None
        self.bytes_written = 0  # everything this process put in the store for the stream

    def read(self) -> LogContents:
        """Everything a restore needs, oldest first, changing nothing (anyone may read).
        Raises LogDamaged naming the object that is not what was written."""
        manifest = self._read_manifest()
        first, snapshot_at = manifest.get("first_segment", 1), manifest.get("snapshot")
        snapshot = None
        if snapshot_at is not None:
            snapshot = self.store.get(self.stream_id, snapshot_at)
            if snapshot is None:
                raise LogDamaged(f"the manifest of stream {self.stream_id} names {snapshot_at}, which is missing")
        names = list(self.store.listing(self.stream_id))
        numbers = sorted(n for n in map(self._number, names) if n is not None and n >= first)
        records, torn = [], None
        for number in numbers:
            name = segment_name(number)
            data = self.store.get(self.stream_id, name) or b""
            parsed = parse(data, f"{name} of stream {self.stream_id}", newest=number == numbers[-1])
            records += [(number, kind, payload) for kind, payload in parsed.records]
            if parsed.torn:
                torn = (name, data[:parsed.complete_bytes])
        leftovers = [name for name in names if (self._number(name) or first) < first
                     or (name.startswith("snapshot-") and name != snapshot_at)]
        self.first_segment, self.snapshot = first, snapshot_at
        return LogContents(snapshot, records, numbers[-1] if numbers else None, torn, leftovers)

    def take_over(self, contents: LogContents) -> None:
        """Become the log's one writer after reading it: a torn tail is cut back to its whole
        records (so a later segment may follow it), leftovers are removed, and the next
        segment is numbered after the last."""
        self._fence()
        if contents.torn is not None:
            name, whole = contents.torn
            if whole:
                self.store.put(self.stream_id, name, whole)
            else:
                self.store.remove(self.stream_id, [name])
        self.store.remove(self.stream_id, contents.leftovers)
        self.next_segment = contents.last_segment + 1 if contents.last_segment is not None else self.first_segment

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

    @staticmethod
    def _number(name: str) -> int | None:
        match = _SEGMENT.match(name)
        return int(match.group(1)) if match else None

    def start_afresh(self) -> None:
        """Give up a log that cannot be used (its damage was reported): a manifest that names
        no snapshot and starts after every existing segment, which are then removed."""
        self._fence()
        numbers = [n for n in map(self._number, self.store.listing(self.stream_id)) if n is not None]
        self.first_segment = self.next_segment = max(numbers, default=0) + 1
        self.snapshot = None
        self.commit(self.next_segment)
        self.store.remove(self.stream_id, [segment_name(n) for n in numbers])

    def append(self, records: list[tuple[int, bytes]]) -> int:
        """Write `records` ((kind, payload)) as the next segment; returns its number."""
        self._fence()
        number = self.next_segment
        data = b"".join(frame(kind, payload) for kind, payload in records)
        self.store.put(self.stream_id, segment_name(number), data)
        self.next_segment += 1
        self.bytes_written += len(data)
        return number

    def commit(self, first_segment: int, snapshot: tuple[int, bytes] | None = None) -> None:
        """Drop the segments before `first_segment` and, with `snapshot` ((packet sequence,
        bytes)), make it the model's base: snapshot first, then the manifest, then removals."""
        self._fence()
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

    def _fence(self) -> None:
        if self.epoch is not None:
            check_fence(self.store, self.stream_id, self.epoch)

    def footprint_bytes(self) -> int:
        """What the stream occupies in the store now."""
        return sum(self.store.listing(self.stream_id).values())
