"""Which stream's due round trains next when a host cannot train them all: the scheduler's policy.

Every stream makes a round due each training period. Below capacity every due round trains
and the policy only orders them; past capacity it decides who is helped. Pure bookkeeping
(no Ray, no torch, no clocks), so it is tested directly; a trainer host keeps one
`RoundQueue` and asks the coordinator for turns with the priority of its best round.

- `fifo`: in the order rounds fell due. Past capacity every stream waits a little longer for
  every round, until none is helped (the behaviour before this policy existed).
- `round_robin`: the stream trained least recently first: equal shares, however much or
  little a round buys.
- `gain`: the round that buys the most mIoU per second of training first
  (`ams_ray.learn.training_value`), with three rules that keep it honest:
  - a fairness floor: a stream whose round has waited `floor_periods` training periods goes
    before any other (oldest first), so no stream is starved while others train;
  - deferral: a round still waiting when its stream's next chunk arrives steps aside, and the
    stream asks again with that chunk (a fresher window and a longer wait), instead of
    holding its stream's labelling while it waits;
  - hibernation (ATR's idea across streams): a stream whose device model already agrees with
    the teacher as well as its training got it, so that a round would win less than
    `hibernate_gain` mIoU points, asks for no round until that changes (its scene moves);
  - reverting: a device whose adapted model fell `revert_margin` mIoU below the pretrained
    one on the newest chunk (its scene changed) is sent the pretrained model at once, a
    packet without training, rather than keep a harmful model until its round is trained;
  - outpaced: a stream whose adapted models have, on the chunks its device met with them,
    done worse than the pretrained one (its `advantage` below zero: its scenes change faster
    than its rounds come back) is worse off for being trained. It stays on the pretrained
    model and asks for a round only once every `PROBE_PERIODS`, a probe that tells whether
    it keeps up again (a quieter scene, or a server less loaded). Its rounds go to streams
    they help. This is what keeps a stream from being pushed below its pretrained model
    when the server is short; an outpaced device is reverted as soon as a chunk finds it
    behind at all, not `revert_margin` behind, and at once when it becomes outpaced (the
    model it holds is, on this stream's record, worse than none); a probe's model stays while
    the chunks it meets do not find it behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from ams_ray.learn.training_value import TrainingValue

FLOOR_PRIORITY = 1e6  # above any expected gain per second: a stream at its floor goes first
HIBERNATE_GAIN = 4.0  # mIoU points: below this a round is not worth a turn (the noise of a smoothed chunk)
REVERT_MARGIN = 5.0  # mIoU points below the pretrained model on one chunk (a few frames) that is no noise
OUTPACED_EVIDENCE = 3  # chunks met with an adapted model before a stream can be called outpaced
PROBE_PERIODS = 6.0  # an outpaced stream still trains once per this many periods, to learn whether it keeps up
Ticket = TypeVar("Ticket")


@dataclass(frozen=True)
class RoundClaim:
    """A due round waiting for training, as the policy sees it."""

    stream_id: str
    order: int  # when it joined the queue, among the host's rounds
    waited_s: float  # video seconds since its stream first asked, unanswered
    since_trained_s: float  # video seconds since its stream's newest trained round
    per_second: float  # expected mIoU gain per second of training

    @classmethod
    def of(cls, stream_id: str, order: int, value: TrainingValue, now_s: float) -> "RoundClaim":
        waited = now_s - value.waiting_since_s if value.waiting_since_s is not None else 0.0
        return cls(stream_id, order, waited, value.since_trained_s(now_s), value.per_second)


class FifoPolicy:
    name = "fifo"
    defers = False  # a round waits for its turn, however long
    measures_agreement = False  # the host need not measure its streams' agreement with the teacher

    def key(self, claim: RoundClaim) -> tuple:
        """Smaller trains first."""
        return (claim.order,)

    def priority(self, claim: RoundClaim) -> float:
        """Larger trains first across hosts (where the turn policy reads it); exported per stream."""
        return 0.0

    def protected(self, claim: RoundClaim) -> bool:
        return False

    def rests(self, value: TrainingValue, now_s: float) -> str | None:
        """Why the stream should ask for no round now ("hibernating", "outpaced"), or None."""
        return None

    def outpaced(self, value: TrainingValue) -> bool:
        """Adapting has, lately, cost this stream accuracy rather than bought it."""
        return False

    def reverts(self, value: TrainingValue) -> bool:
        """Whether the device should be put back on the pretrained model now."""
        return False


class RoundRobinPolicy(FifoPolicy):
    name = "round_robin"

    def key(self, claim: RoundClaim) -> tuple:
        return (-claim.since_trained_s, claim.order)

    def priority(self, claim: RoundClaim) -> float:
        return claim.since_trained_s


class GainPolicy(FifoPolicy):
    name = "gain"
    defers = True
    measures_agreement = True

    def __init__(self, period_s: float, floor_periods: float = 4.0, hibernate_gain: float = HIBERNATE_GAIN,
                 revert_margin: float = REVERT_MARGIN) -> None:
        if period_s <= 0 or floor_periods <= 0:
            raise ValueError(f"the fairness floor needs a positive period and count, got {period_s} s x "
                             f"{floor_periods}")
        self.floor_s, self.hibernate_gain = period_s * floor_periods, hibernate_gain
        self.revert_margin, self.probe_s = revert_margin, period_s * PROBE_PERIODS

    def protected(self, claim: RoundClaim) -> bool:
        return claim.waited_s >= self.floor_s

    def key(self, claim: RoundClaim) -> tuple:
        if self.protected(claim):
            return (0, -claim.waited_s, claim.order)
        return (1, -claim.per_second, claim.order)

    def priority(self, claim: RoundClaim) -> float:
        return FLOOR_PRIORITY + claim.waited_s if self.protected(claim) else claim.per_second

    def outpaced(self, value: TrainingValue) -> bool:
        return value.adapted_chunks >= OUTPACED_EVIDENCE and value.advantage is not None and value.advantage < 0

    def rests(self, value: TrainingValue, now_s: float) -> str | None:
        if self.outpaced(value) and value.since_trained_s(now_s) < self.probe_s:
            return "outpaced"
        if value.expected_gain < self.hibernate_gain:
            return "hibernating"
        return None

    def reverts(self, value: TrainingValue) -> bool:
        if self.outpaced(value):  # the model goes, unless it is a probe that is not behind
            return value.behind_pretrained_by > 0 or not value.probing
        return value.behind_pretrained_by >= self.revert_margin


SCHEDULERS = ("fifo", "round_robin", "gain", "concurrent")


def make_round_policy(name: str, period_s: float, floor_periods: float = 4.0,
                      hibernate_gain: float = HIBERNATE_GAIN) -> FifoPolicy:
    """The policy a host orders its rounds by (`concurrent` trains every round at once: its
    rounds queue in the order they fell due)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    if name == "gain":
        return GainPolicy(period_s, floor_periods, hibernate_gain)
    return RoundRobinPolicy() if name == "round_robin" else FifoPolicy()


class RoundQueue(Generic[Ticket]):
    """A host's due rounds, one per stream, each with the caller's ticket (what answers it)."""

    def __init__(self, policy: FifoPolicy) -> None:
        self.policy = policy
        self._waiting: dict[str, tuple[RoundClaim, Ticket]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._waiting

    def push(self, claim: RoundClaim, ticket: Ticket) -> Ticket | None:
        """Queue a stream's round; returns the ticket of a round of the same stream it displaced
        (one a host left behind when it reopened the stream), for the caller to answer."""
        displaced = self._waiting.pop(claim.stream_id, None)
        self._waiting[claim.stream_id] = (claim, ticket)
        return displaced[1] if displaced is not None else None

    def best(self) -> RoundClaim | None:
        if not self._waiting:
            return None
        return min((claim for claim, _ in self._waiting.values()), key=self.policy.key)

    def pop(self) -> tuple[RoundClaim, Ticket]:
        """The round to train now."""
        best = self.best()
        if best is None:
            raise IndexError("no round is waiting")
        return self._waiting.pop(best.stream_id)

    def pop_all(self) -> list[tuple[RoundClaim, Ticket]]:
        """Every waiting round, best first (one fused step trains them together)."""
        ranked = sorted(self._waiting.values(), key=lambda item: self.policy.key(item[0]))
        self._waiting.clear()
        return ranked

    def step_aside(self, stream_id: str) -> Ticket | None:
        """The stream's next chunk arrived: its waiting round steps aside if the policy defers
        and the stream is not at its floor. Returns the ticket to answer, or None (it waits on)."""
        item = self._waiting.get(stream_id)
        if item is None or not self.policy.defers or self.policy.protected(item[0]):
            return None
        del self._waiting[stream_id]
        return item[1]
