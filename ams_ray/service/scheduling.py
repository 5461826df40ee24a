"""Which trainer host may train now, when hosts share an accelerator (the turn level).

Which of a host's own streams trains in its turn is the round level
(`ams_ray.service.round_policy`); a host asks for a turn with the priority of its best
round, so the two levels rank alike. A policy is pure bookkeeping (no Ray, no clocks) so it
can be tested directly; the Ray coordinator actor only turns its decisions into awaited events.

- `concurrent`: every host trains as soon as a round is due; accelerators are time-shared.
- `fifo` and `round_robin`: one host per slot at a time, in the order they asked (the
  paper's multi-client setting). An accelerator may hold several slots: a CPU node trains
  one round per core at a time, since each host trains on one thread. Rounds run back to
  back instead of time-sharing the cores, so the first finish early instead of all
  finishing late together.
- `gain`: the same slots, granted to the waiting host whose round is worth most.
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


class TakingTurns:
    def __init__(self, slots_per_accelerator: int = 1, name: str = "fifo") -> None:
        self.name = name
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
        self._asked_with(holder, priority)
        return False

    def _asked_with(self, holder: str, priority: float) -> None:
        """Turns here go in the order asked; the priority is not needed."""

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
            nxt = self._next(self._waiting[accelerator])
            self._waiting[accelerator].remove(nxt)
            self._holders[accelerator].add(nxt)
            granted.append(nxt)
        return granted

    def _next(self, waiting: deque[str]) -> str:
        return waiting[0]


class PriorityTurns(TakingTurns):
    """The waiting host that asked with the highest priority goes first (ties: who asked first)."""

    def __init__(self, slots_per_accelerator: int = 1) -> None:
        super().__init__(slots_per_accelerator, "gain")
        self._priority: dict[str, float] = {}

    def _asked_with(self, holder: str, priority: float) -> None:
        self._priority[holder] = priority

    def _next(self, waiting: deque[str]) -> str:
        return max(waiting, key=lambda holder: self._priority.get(holder, 0.0))  # max keeps the first of equals


def make_policy(name: str):
    """The turn policy for a scheduler (`ams_ray.service.round_policy.SCHEDULERS`)."""
    if name == "concurrent":
        return ConcurrentPolicy()
    if name == "gain":
        return PriorityTurns()
    if name in ("fifo", "round_robin"):
        return TakingTurns(name=name)
    raise ValueError(f"unknown scheduler {name!r}; choose one of fifo, round_robin, gain, concurrent")
