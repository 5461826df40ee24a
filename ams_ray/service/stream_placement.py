"""Which trainer host holds which stream: rendezvous (highest-random-weight) hashing.

Every stream ranks every host by a hash of the pair and goes to its top host. The answer
depends only on the stream and the set of live hosts, so any ingress replica, or a
directory rebuilt after a restart, computes the same placement without asking anyone; and
a change of the set moves only the streams whose top host came or went: adding an N+1st
host moves about 1/(N+1) of them, all to the new host, and losing a host moves only its
own streams, spread over the survivors. (`crc32(id) % N`, what the service used before,
moves about N/(N+1) of them for the same change.)
"""

from __future__ import annotations

import hashlib
from typing import Iterable


def rank(stream_id: str, host: str) -> int:
    """The pair's weight: 64 bits of BLAKE2b, stable across processes and Python versions
    (the built-in `hash` of a string is salted per process)."""
    return int.from_bytes(hashlib.blake2b(f"{host}\x00{stream_id}".encode(), digest_size=8).digest(), "big")


def owner(stream_id: str, hosts: Iterable[str]) -> str:
    """The host `stream_id` belongs on among `hosts` (ties, vanishingly rare, go to the larger name)."""
    candidates = list(hosts)
    if not candidates:
        raise ValueError(f"no live trainer host to place stream {stream_id} on")
    return max(candidates, key=lambda host: (rank(stream_id, host), host))


def place(streams: Iterable[str], hosts: Iterable[str]) -> dict[str, str]:
    hosts = list(hosts)
    return {stream: owner(stream, hosts) for stream in streams}


def moves(streams: Iterable[str], before: Iterable[str], after: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The streams whose host changes when the live hosts go from `before` to `after`:
    stream -> (old host, new host)."""
    before, after = list(before), list(after)
    changed = {}
    for stream in streams:
        old, new = owner(stream, before), owner(stream, after)
        if old != new:
            changed[stream] = (old, new)
    return changed
