"""Per-device request budgets: a token bucket each, so a burst is fine and a flood is not.

A device uploads one chunk per send period and keeps one long-poll open, a few requests a
minute; a client stuck in a retry loop or a stolen token would send hundreds a second.
"""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs per_second > 0 and burst >= 1, got {per_second}, {burst}")
        self.per_second, self.burst = per_second, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)

    def retry_after_s(self, key: str) -> float:
        """Take one request from `key`'s budget: 0.0 when allowed, else seconds until it would be."""
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.per_second
