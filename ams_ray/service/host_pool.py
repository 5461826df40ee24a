"""How many trainer hosts a service wants: a range the operator sets, and load within it.

`--hosts 3` is a fixed pool; `--hosts 2..8` grows by one host whenever the open streams per
host pass `streams_per_host`, and shrinks by one when the pool has been bigger than the
streams need for `shrink_after_s` (a short lull should not cost a move of every stream
twice). The same `N` / `MIN..MAX` syntax sizes the ingress and teacher replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaleRange:
    low: int
    high: int

    @classmethod
    def parse(cls, text: str | int, what: str = "a scale") -> "ScaleRange":
        """`"3"` -> 3..3, `"2..8"` -> 2..8; anything else is refused with the syntax."""
        low, sep, high = str(text).strip().partition("..")
        try:
            scale = cls(int(low), int(high) if sep else int(low))
        except ValueError:
            raise ValueError(f"{what} is N or MIN..MAX (e.g. 3 or 2..8), not {text!r}") from None
        if scale.low < 1 or scale.high < scale.low:
            raise ValueError(f"{what} {text!r} needs 1 <= MIN <= MAX")
        return scale

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        return str(self.low) if self.fixed else f"{self.low}..{self.high}"


@dataclass
class PoolSizer:
    """Decides, from the open streams over time, the pool size to aim at."""

    scale: ScaleRange
    streams_per_host: int
    shrink_after_s: float = 120.0
    _too_big_since: float | None = None

    def needed(self, open_streams: int) -> int:
        """Hosts that keep every host at or under `streams_per_host`, within the range."""
        return min(self.scale.high, max(self.scale.low, math.ceil(open_streams / self.streams_per_host)))

    def target(self, hosts: int, open_streams: int, now_s: float) -> int:
        """The pool size to move to now: one more when the streams need more, one fewer when
        they have needed fewer for `shrink_after_s`, else `hosts`."""
        needed = self.needed(open_streams)
        if needed > hosts or hosts < self.scale.low:
            self._too_big_since = None
            return hosts + 1
        if needed < hosts:
            if self._too_big_since is None:
                self._too_big_since = now_s
            if now_s - self._too_big_since >= self.shrink_after_s:
                self._too_big_since = None
                return hosts - 1
            return hosts
        self._too_big_since = None
        return hosts
