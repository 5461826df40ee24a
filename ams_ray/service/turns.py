"""Training turns as leases: what keeps one dead trainer from stalling every stream on its accelerator.

A scheduling policy (`scheduling`) decides *who* trains next; `TurnBook` adds *for how long*
and *by which process*. Every turn is a lease that expires `lease_s` after it was granted,
and every request carries the incarnation (one id per trainer process) that made it. So:

- a trainer that dies holding a turn loses it when its restarted process registers again
  (a new incarnation), or when the lease expires if it never comes back;
- a trainer that dies while queued is dropped from the queue the same way;
- a release or a grant for a dead incarnation changes nothing.

Pure bookkeeping with the clock passed in, so it is tested without Ray or sleeping; the
Ray coordinator turns its answers into awaited futures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ams_ray.service.scheduling import make_policy


@dataclass
class TurnBook:
    scheduler: str = "fifo"
    lease_s: float = 120.0
    policy: object = field(init=False)
    accelerators: dict[str, str] = field(default_factory=dict)
    incarnations: dict[str, str] = field(default_factory=dict)
    expiries: dict[str, float] = field(default_factory=dict)  # holder -> when its turn lapses
    reclaimed: int = 0  # turns taken back from holders that died or overran their lease

    def __post_init__(self) -> None:
        if self.lease_s <= 0:
            raise ValueError(f"a training turn lease must be positive, got {self.lease_s}")
        self.policy = make_policy(self.scheduler)

    def register(self, holder: str, accelerator: str, slots: int, incarnation: str, now: float) -> list[str]:
        """A trainer process announces itself; a new incarnation replaces (and drops) the old one.
        Returns the holders granted a turn the old incarnation held."""
        granted = []
        if self.incarnations.get(holder) not in (None, incarnation):
            granted = self._drop(holder, now)
        self.incarnations[holder], self.accelerators[holder] = incarnation, accelerator
        self.policy.set_slots(accelerator, slots)
        return granted

    def current(self, holder: str, incarnation: str) -> bool:
        return self.incarnations.get(holder) == incarnation

    def request(self, holder: str, incarnation: str, now: float, priority: float = 0.0) -> bool | None:
        """True: the turn is granted now; False: queued; None: that process has been replaced.
        `priority`: what the holder's best waiting round is worth (`round_policy`)."""
        if not self.current(holder, incarnation):
            return None
        if self.policy.request(holder, self.accelerators[holder], priority):
            self.expiries[holder] = now + self.lease_s
            return True
        return False

    def release(self, holder: str, incarnation: str, now: float) -> list[str]:
        """End a turn (or give up waiting for one); returns the holders granted in its place."""
        if not self.current(holder, incarnation):
            return []
        return self._drop(holder, now)

    def expire(self, now: float) -> list[str]:
        """Take back lapsed turns; returns the holders granted in their place."""
        granted = []
        for holder, expiry in list(self.expiries.items()):
            if expiry <= now:
                self.reclaimed += 1
                granted += self._drop(holder, now)
        return granted

    def _drop(self, holder: str, now: float) -> list[str]:
        self.expiries.pop(holder, None)
        granted = self.policy.drop(holder, self.accelerators[holder])
        for g in granted:
            self.expiries[g] = now + self.lease_s
        return granted
