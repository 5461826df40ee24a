"""Calling the shared teacher from a trainer: bounded waits, and one retry per frame.

A replica that dies mid-batch fails every request riding in that batch; Serve starts a
replacement, and asking again once, after a short pause in which the router learns that the
replica is gone, lands on it (or on another replica). A frame that fails twice is given up:
the caller skips that chunk's labels rather than stalling its stream.
"""

from __future__ import annotations

import time

import numpy as np

LabelRequest = tuple[str | None, int, np.ndarray]  # (source key, frame index, frame)


def label_with_retry(handle, requests: list[LabelRequest], timeout_s: float, retry_after_s: float = 2.0) -> list:
    """One reply per request, in order: (labels, batch size, batch seconds), or the exception
    of its second failed attempt."""
    results: list = [None] * len(requests)
    for attempt in range(2):
        if attempt:
            time.sleep(retry_after_s)
        pending = [k for k, r in enumerate(results) if r is None or isinstance(r, Exception)]
        responses = {k: handle.label.remote(requests[k]) for k in pending}
        for k, response in responses.items():
            try:
                results[k] = response.result(timeout_s=timeout_s)
            except Exception as exc:  # noqa: BLE001 - a dead replica, a timeout or the teacher's own error
                results[k] = exc
        if not any(isinstance(r, Exception) for r in results):
            break
    return results
