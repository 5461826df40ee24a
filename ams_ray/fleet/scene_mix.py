"""A fleet of cameras that are not alike: how many of each scene kind, and which stream is which.

A real fleet mixes fixed cameras over a quiet street with cameras whose scene changes every
minute, and a scheduler that spends training where it buys accuracy is only tested on such
a fleet. `SceneMix.parse("static:0.25,slow:0.5,fast:0.25")` reads the shares;
`kinds(count, seed)` gives each stream its kind: the counts by largest remainder (so 8
streams at 0.25/0.5/0.25 are exactly 2/4/2), the order shuffled from the seed, so a run is
repeatable and stream numbers do not line up with kinds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ams_ray.data.synthetic import SCENE_KINDS


@dataclass(frozen=True)
class SceneMix:
    shares: tuple[tuple[str, float], ...]  # (kind, share), shares summing to 1

    @classmethod
    def parse(cls, text: str) -> "SceneMix":
        """`KIND:SHARE,...` (shares are normalised, so `static:1,fast:3` is a quarter static) or one KIND."""
        shares: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            kind, _, share = part.partition(":")
            if kind not in SCENE_KINDS:
                raise ValueError(f"unknown scene kind {kind!r} in {text!r}; choose from {', '.join(SCENE_KINDS)}")
            try:
                value = float(share) if share else 1.0
            except ValueError:
                raise ValueError(f"scene share {share!r} of {kind!r} is not a number (e.g. static:0.25)") from None
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"scene share of {kind!r} must be a non-negative number, got {share}")
            shares[kind] = shares.get(kind, 0.0) + value
        total = sum(shares.values())
        if total <= 0:
            raise ValueError(f"scene mix {text!r} gives no stream a kind; e.g. static:0.25,slow:0.5,fast:0.25")
        return cls(tuple((kind, value / total) for kind, value in shares.items() if value > 0))

    def counts(self, count: int) -> dict[str, int]:
        """Streams of each kind among `count`, by largest remainder."""
        exact = {kind: share * count for kind, share in self.shares}
        counts = {kind: math.floor(value) for kind, value in exact.items()}
        by_remainder = sorted(exact, key=lambda kind: (counts[kind] - exact[kind], kind))
        for kind in by_remainder[:count - sum(counts.values())]:
            counts[kind] += 1
        return counts

    def kinds(self, count: int, seed: int) -> list[str]:
        """Each stream's kind, deterministic from `seed`."""
        kinds = [kind for kind, n in self.counts(count).items() for _ in range(n)]
        random.Random(f"scene-mix:{seed}").shuffle(kinds)
        return kinds

    def __str__(self) -> str:
        return ",".join(f"{kind}:{share:g}" for kind, share in self.shares)
