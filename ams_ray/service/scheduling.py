"""Who may train now, when trainers share a accelerator.

A policy is pure bookkeeping (no Ray, no clocks) so it can be tested directly; the Ray
coordinator actor only turns its decisions into awaited events.

- `concurrent`: every trainer trains as soon as it is due; accelerators are time-shared.
- `round_robin`: one trainer per accelerator at a time, in the order they became due (the
  paper's multi-client setting). Each trainer host asks once per due round, so FIFO is round robin.
  A accelerator may hold several slots: a CPU node trains one round per core at a time, since
  each trainer trains on one thread. Rounds run back to back instead of time-sharing the
  cores, so the first finish early instead of all finishing late together.

A smarter policy (e.g. train first the streams whose accuracy is falling fastest) only
needs to order `_waiting` by the `priority` that `request` already receives.
"""

from __future__ import annotations

from collections import defaultdict, deque


class ConcurrentPolicy:
    name = "concurrent"

    def set_slots(self, accelerator: str, slots: int) -> None:
        """Ignored: every due trainer trains."""

    def request(self, holder: str, accelerator: str, priority: float = 0.0) -> bool:
        return True

    def release(self, holder: str, accelerator: str) -> list[str]:
        return []

    def drop(self, holder: str, accelerator: str) -> list[str]:
        return []


class RoundRobinPolicy:
    name = "round_robin"

    def __init__(self, slots_per_accelerator: int = 1) -> None:
        self._default_slots = self._checked(slots_per_accelerator)
        self._slots: dict[str, int] = {}
        self._holders: dict[str, set[str]] = defaultdict(set)
        self._waiting: dict[str, deque[str]] = defaultdict(deque)

    @staticmethod
    def _checked(slots: int) -> int:
        if slots < 1:
            raise ValueError(f"a accelerator needs at least 1 training slot, got {slots}")
        return slots

    def set_slots(self, accelerator: str, slots: int) -> None:
        self._slots[accelerator] = self._checked(slots)

    def slots(self, accelerator: str) -> int:
        return self._slots.get(accelerator, self._default_slots)

    def request(self, holder: str, accelerator: str, priority: float = 0.0) -> bool:
        """True if the holder may train now; otherwise it is queued until a release grants it."""
        if holder in self._holders[accelerator]:
            return True
        if len(self._holders[accelerator]) < self.slots(accelerator) and not self._waiting[accelerator]:
            self._holders[accelerator].add(holder)
            return True
        if holder not in self._waiting[accelerator]:
            self._waiting[accelerator].append(holder)
        return False

    def release(self, holder: str, accelerator: str) -> list[str]:
        """Free the holder's slot; returns the holders granted in its place."""
        self._holders[accelerator].discard(holder)
        return self._fill(accelerator)

    def drop(self, holder: str, accelerator: str) -> list[str]:
        """Forget a holder that is gone (its process died), holding or queued; returns the
        holders granted the slot it may have held."""
        if holder in self._waiting[accelerator]:
            self._waiting[accelerator].remove(holder)
        return self.release(holder, accelerator)

    def _fill(self, accelerator: str) -> list[str]:
        granted = []
        while self._waiting[accelerator] and len(self._holders[accelerator]) < self.slots(accelerator):
            nxt = self._waiting[accelerator].popleft()
            self._holders[accelerator].add(nxt)
            granted.append(nxt)
        return granted


POLICIES = {"concurrent": ConcurrentPolicy, "round_robin": RoundRobinPolicy}


def make_policy(name: str):
    if name not in POLICIES:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[name]()
