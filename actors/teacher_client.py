"""Calling the shared teacher from a trainer: bounded waits, and one retry per frame.

A replica that dies mid-batch fails every request riding in that batch; Serve starts a
replacement, and asking again once, after a short pause in which the router learns that the
replica is gone, lands on it (or on another replica). A frame that fails twice is given up:
the caller skips that chunk's labels rather than stalling its stream. A scoring frame the
teacher shed under load is not asked for again: shedding it was the point.
"""

from __future__ import annotations

import asyncio

import numpy as np

from ams_ray.teach.label_queue import Purpose, ScoringShed

LabelRequest = tuple[str | None, int, np.ndarray]  # (source key, frame index, frame)


async def label_with_retry(handle, requests: list[LabelRequest], timeout_s: float, purpose: Purpose = "training",
                           retry_after_s: float = 2.0) -> list:
    """One reply per request, in order: (labels, batch size, batch seconds), or the exception
    of its second failed attempt (or ScoringShed). Awaited, so a trainer host labels one
    stream's chunk while others train or wait for their own labels."""
    results: list = [None] * len(requests)
    for attempt in range(2):
        if attempt:
            await asyncio.sleep(retry_after_s)
        pending = [k for k, r in enumerate(results) if r is None or _retryable(r)]
        replies = await asyncio.gather(*(_bounded(handle.label.remote(requests[k], purpose), timeout_s)
                                         for k in pending))
        for k, reply in zip(pending, replies):
            results[k] = reply
        if not any(_retryable(r) for r in results):
            break
    return results


def _retryable(result) -> bool:
    return isinstance(result, Exception) and not isinstance(result, ScoringShed)


async def _bounded(response, timeout_s: float):
    """A reply, or the exception that stands for it (a dead replica, a timeout, the teacher's own)."""
    try:
        return await asyncio.wait_for(response, timeout_s)
    except Exception as exc:  # noqa: BLE001 - every failure is a per-frame result
        return exc
