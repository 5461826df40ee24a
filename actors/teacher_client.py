"""Calling the shared teacher from a trainer: bounded waits, and one retry per frame.

A replica that dies mid-batch fails every request riding in that batch; Serve starts a
replacement, and asking again once, after a short pause in which the router learns that the
replica is gone, lands on it (or on another replica). A frame that fails twice is given up:
the caller skips that chunk's labels rather than stalling its stream.
"""

from __future__ import annotations

import asyncio

import numpy as np

LabelRequest = tuple[str | None, int, np.ndarray]  # (source key, frame index, frame)


async def label_with_retry(handle, requests: list[LabelRequest], timeout_s: float,
                           retry_after_s: float = 2.0) -> list:
    """One reply per request, in order: (labels, batch size, batch seconds), or the exception
    of its second failed attempt. Awaited, so a trainer host labels one stream's chunk while
    others train or wait for their own labels."""
    results: list = [None] * len(requests)
    for attempt in range(2):
        if attempt:
            await asyncio.sleep(retry_after_s)
        pending = [k for k, r in enumerate(results) if r is None or isinstance(r, Exception)]
        replies = await asyncio.gather(*(_bounded(handle.label.remote(requests[k]), timeout_s) for k in pending))
        for k, reply in zip(pending, replies):
            results[k] = reply
        if not any(isinstance(r, Exception) for r in results):
            break
    return results


async def _bounded(response, timeout_s: float):
    """A reply, or the exception that stands for it (a dead replica, a timeout, the teacher's own)."""
    try:
        return await asyncio.wait_for(response, timeout_s)
    except Exception as exc:  # noqa: BLE001 - every failure is a per-frame result
        return exc
