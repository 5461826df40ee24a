"""Which process may write a stream's log: a lease with an epoch (a fencing token).

The stream directory grants a stream to one trainer host at a time, each grant one epoch
higher than the last, recorded as ``lease.json`` in the stream's folder of the store. The
host's log writes carry the epoch it was granted (`StreamLog(epoch=...)`) and check it
against the store's before every write, so a host that lost the stream (its lease moved
while it was paused, partitioned or simply slow to notice) fails its next write with
`LeaseLost` instead of forking the stream's log. Two hosts may briefly both *think* they
hold a stream; only the newer one can make it durable.

The check and the write are two requests, so a write already past its check when the lease
moves can still land: that window is one store round-trip, not a pause of any length. A
store with conditional writes (S3 `If-Match`, GCS generation preconditions) would close it;
fsspec exposes neither portably.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ams_ray.service.checkpoint_store import CheckpointStore

LEASE = "lease.json"


class LeaseLost(RuntimeError):
    """This host does not hold the stream (any more): ask the directory where it is now."""


@dataclass(frozen=True)
class Lease:
    epoch: int  # 0: never granted
    holder: str | None


def read_lease(store: CheckpointStore, stream_id: str) -> Lease:
    data = store.get(stream_id, LEASE)
    if data is None:
        return Lease(0, None)
    document = json.loads(data)
    return Lease(int(document["epoch"]), document.get("holder"))


def grant(store: CheckpointStore, stream_id: str, holder: str) -> Lease:
    """Lease the stream to `holder` with the next epoch. Only the directory grants, one at a
    time, so read-then-write needs no lock."""
    lease = Lease(read_lease(store, stream_id).epoch + 1, holder)
    store.put(stream_id, LEASE, json.dumps({"epoch": lease.epoch, "holder": holder}).encode())
    return lease


def check_fence(store: CheckpointStore, stream_id: str, epoch: int) -> None:
    """Raise LeaseLost unless `epoch` is still the stream's lease."""
    lease = read_lease(store, stream_id)
    if lease.epoch != epoch:
        raise LeaseLost(f"stream {stream_id} is leased to {lease.holder} at epoch {lease.epoch}; this writer holds "
                        f"epoch {epoch}, so its writes are refused (the stream moved)")


def current_holdings(store: CheckpointStore, holder: str, held: dict[str, int | None]) -> dict[str, int | None]:
    """Of the streams `holder` says it holds (stream -> epoch), those whose lease is still its
    own. A restarted directory adopts only these: a copy a host kept after its lease moved on
    (the move was cut short, or the host was slow to notice) would send every call to a host
    that must refuse it."""
    current = {}
    for stream_id, epoch in held.items():
        lease = read_lease(store, stream_id)
        if lease.epoch == epoch and lease.holder == holder:
            current[stream_id] = epoch
    return current
