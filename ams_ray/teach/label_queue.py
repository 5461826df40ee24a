"""The requests waiting at one teacher replica, served training first.

A teacher labels frames for two purposes: training (a stream's window cannot grow without
them, and its next packet waits on them) and scoring (an edge measures its model against
the teacher's labels, which only the report reads). Under load the second must never cost
the first: a batch holds requests of one purpose, a training batch is formed whenever any
training request waits, and scoring requests are shed, oldest first, when too many wait or
when one has waited too long. The queue is plain asyncio (the replica's event loop), so
the order it serves is tested without Ray or Serve.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Purpose = Literal["training", "scoring"]
PURPOSES: tuple[Purpose, ...] = ("training", "scoring")
RECENT_BATCHES = 64  # the purposes and sizes of the last batches, for whoever asks what the teacher did


class ScoringShed(RuntimeError):
    """A scoring request the teacher dropped to keep training labels flowing (counted, not retried)."""


@dataclass
class Waiting:
    request: object
    future: asyncio.Future
    since: float = field(default_factory=time.monotonic)


@dataclass
class QueueCounts:
    arrived: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURPOSES, 0))
    served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURPOSES, 0))
    shed: int = 0  # scoring requests dropped


class LabelQueue:
    def __init__(self, max_batch: int, max_scoring_waiting: int, max_scoring_wait_s: float) -> None:
        """`max_scoring_waiting`: scoring requests kept waiting at most (a newer one sheds the
        oldest); `max_scoring_wait_s`: a scoring request older than this is shed when the next
        batch is formed."""
        if max_batch < 1 or max_scoring_waiting < 1:
            raise ValueError(f"max_batch and max_scoring_waiting must be >= 1, got {max_batch}, {max_scoring_waiting}")
        self.max_batch, self.max_scoring_waiting = max_batch, max_scoring_waiting
        self.max_scoring_wait_s = max_scoring_wait_s
        self.waiting: dict[str, deque[Waiting]] = {p: deque() for p in PURPOSES}
        self.counts = QueueCounts()
        self.recent: deque[tuple[str, int]] = deque(maxlen=RECENT_BATCHES)  # (purpose, size), oldest first
        self._arrival = asyncio.Event()

    def put(self, request: object, purpose: Purpose) -> asyncio.Future:
        """Queue a request; the future gets its labels, its own exception, or ScoringShed."""
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
        future = asyncio.get_running_loop().create_future()
        self.waiting[purpose].append(Waiting(request, future))
        self.counts.arrived[purpose] += 1
        if purpose == "scoring" and len(self.waiting["scoring"]) > self.max_scoring_waiting:
            self._shed(self.waiting["scoring"].popleft(), f"more than {self.max_scoring_waiting} scoring requests waiting")
        self._arrival.set()
        return future

    def length(self, purpose: Purpose) -> int:
        return len(self.waiting[purpose])

    async def next_batch(self, fill_wait_s: float) -> tuple[Purpose, list[Waiting]]:
        """The next batch to label: training requests whenever any wait, else scoring ones.
        Once a request is there, waits up to `fill_wait_s` for the batch to fill; a training
        request arriving meanwhile turns a scoring batch into a training one."""
        while not self._pending():
            self._arrival.clear()
            await self._arrival.wait()
        deadline = time.monotonic() + fill_wait_s
        while self._fillable() and time.monotonic() < deadline:
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        self._shed_stale()
        purpose: Purpose = "training" if self.waiting["training"] else "scoring"
        queue = self.waiting[purpose]
        batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
        batch = [w for w in batch if not w.future.done()]  # a caller that gave up
        self.counts.served[purpose] += len(batch)
        if not batch:
            return await self.next_batch(fill_wait_s)
        self.recent.append((purpose, len(batch)))
        return purpose, batch

    def _pending(self) -> bool:
        return bool(self.waiting["training"] or self.waiting["scoring"])

    def _fillable(self) -> bool:
        """The batch that would go now is not yet full."""
        purpose = "training" if self.waiting["training"] else "scoring"
        return len(self.waiting[purpose]) < self.max_batch

    def _shed_stale(self) -> None:
        scoring = self.waiting["scoring"]
        cutoff = time.monotonic() - self.max_scoring_wait_s
        while scoring and scoring[0].since < cutoff:
            self._shed(scoring.popleft(), f"waited more than {self.max_scoring_wait_s:g} s behind training")

    def _shed(self, waiting: Waiting, why: str) -> None:
        self.counts.shed += 1
        if not waiting.future.done():
            waiting.future.set_exception(ScoringShed(f"scoring request shed: {why}"))
