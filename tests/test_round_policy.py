"""The scheduler's round policies, without Ray: who trains when a host cannot train everyone."""

import pytest

from ams_ray.learn.training_value import TrainingValue
from ams_ray.service.round_policy import (
    FLOOR_PRIORITY,
    OUTPACED_EVIDENCE,
    PROBE_PERIODS,
    GainPolicy,
    RoundClaim,
    RoundQueue,
    make_round_policy,
)

PERIOD_S = 10.0


def _value(agreement: float, phi: float = 0.95, last_trained_s: float = 0.0) -> TrainingValue:
    value = TrainingValue(last_trained_s=last_trained_s)
    value.observe(agreement, phi)
    value.trained(last_trained_s, 1.0)
    return value


def test_with_capacity_for_one_round_gain_trains_the_drifting_stream_and_fifo_the_first_due():
    static, drifting = _value(agreement=88.0, phi=0.97), _value(agreement=55.0, phi=0.7)
    for name, expected in (("gain", "drifting"), ("fifo", "static")):
        queue = RoundQueue(make_round_policy(name, PERIOD_S))
        for order, (sid, value) in enumerate((("static", static), ("drifting", drifting))):
            value.asked(10.0)
            queue.push(RoundClaim.of(sid, order, value, 10.0 + order), sid)
        assert queue.pop()[0].stream_id == expected, name
        static.rested(), drifting.rested()


def test_the_fairness_floor_bounds_every_wait_while_better_streams_keep_asking():
    """Three streams, capacity for one round per send period: two are always worth less than
    the first, yet no due round waits past the floor plus the period it takes to be picked,
    and above the floor the stream worth most trains most."""
    floor_periods = 3
    policy = GainPolicy(PERIOD_S, floor_periods=floor_periods, hibernate_gain=0.0)  # never hibernates
    agreement = {"s0": 60.0, "s1": 70.0, "s2": 80.0}
    values = {sid: _value(a) for sid, a in agreement.items()}
    queue: RoundQueue[str] = RoundQueue(policy)
    trained = {sid: 0 for sid in values}
    for tick in range(1, 61):
        now = tick * PERIOD_S
        for order, (sid, value) in enumerate(values.items()):
            queue.step_aside(sid)  # each stream's next chunk came
            if sid not in queue:
                value.asked(now)
                queue.push(RoundClaim.of(sid, tick * 10 + order, value, now), sid)
        _, sid = queue.pop()
        values[sid].trained(now, 1.0)
        trained[sid] += 1
    longest = {sid: v.longest_wait_s for sid, v in values.items()}
    assert max(longest.values()) <= (floor_periods + 1) * PERIOD_S, longest
    assert longest["s2"] > longest["s0"], "the stream worth most never needs its floor"
    assert trained["s0"] > trained["s1"] >= trained["s2"] >= 60 // (2 * (floor_periods + 1)), trained


def test_a_round_at_its_floor_goes_first_and_does_not_step_aside():
    policy = GainPolicy(PERIOD_S, floor_periods=2)
    queue = RoundQueue(policy)
    starved = RoundClaim("starved", 0, waited_s=25.0, since_trained_s=40.0, per_second=1.0)
    eager = RoundClaim("eager", 1, waited_s=0.0, since_trained_s=10.0, per_second=40.0)
    queue.push(starved, "a"), queue.push(eager, "b")
    assert policy.priority(starved) >= FLOOR_PRIORITY > policy.priority(eager)
    assert queue.step_aside("starved") is None, "a stream at its floor keeps its place"
    assert queue.step_aside("eager") == "b"
    assert queue.pop()[0].stream_id == "starved" and len(queue) == 0


def test_fifo_and_round_robin_never_step_aside():
    for name in ("fifo", "round_robin"):
        queue = RoundQueue(make_round_policy(name, PERIOD_S))
        queue.push(RoundClaim("a", 0, 0.0, 10.0, 5.0), "ticket")
        assert queue.step_aside("a") is None and len(queue) == 1


def test_round_robin_trains_the_stream_trained_least_recently_first():
    queue = RoundQueue(make_round_policy("round_robin", PERIOD_S))
    queue.push(RoundClaim("recent", 0, 0.0, since_trained_s=10.0, per_second=99.0), 1)
    queue.push(RoundClaim("neglected", 1, 0.0, since_trained_s=50.0, per_second=0.1), 2)
    assert [claim.stream_id for claim, _ in queue.pop_all()] == ["neglected", "recent"]


def test_a_stream_that_agrees_as_well_as_its_training_got_it_hibernates_and_wakes_when_its_scene_moves():
    policy = GainPolicy(PERIOD_S, hibernate_gain=4.0)
    value = TrainingValue()
    value.observe(60.0, 0.99)
    assert policy.rests(value, 10.0) is None, "before its first round a stream's ceiling is 100"
    value.trained(10.0, 1.0)
    for _ in range(3):
        value.observe(88.0, 0.99)  # trained: the model now agrees with the teacher and levels off
    assert policy.rests(value, 40.0) == "hibernating" and value.expected_gain < 4.0
    value.observe(50.0, 0.6)  # the scene changed: far below where training got it
    assert policy.rests(value, 50.0) is None and value.expected_gain > 15.0
    assert make_round_policy("fifo", PERIOD_S).rests(value.__class__(), 50.0) is None, "only gain hibernates"


def test_a_stream_has_one_round_waiting_and_unknown_schedulers_are_refused():
    queue = RoundQueue(make_round_policy("gain", PERIOD_S))
    assert queue.push(RoundClaim("a", 0, 0.0, 0.0, 1.0), 1) is None
    assert queue.push(RoundClaim("a", 1, 0.0, 0.0, 1.0), 2) == 1, "a stream reopened here displaces its old round"
    assert len(queue) == 1 and queue.pop()[1] == 2
    with pytest.raises(ValueError, match="unknown scheduler 'fastest'"):
        make_round_policy("fastest", PERIOD_S)
    with pytest.raises(ValueError, match="positive period"):
        GainPolicy(PERIOD_S, floor_periods=0)
    with pytest.raises(IndexError):
        RoundQueue(make_round_policy("fifo", PERIOD_S)).pop()


def test_gain_reverts_a_device_whose_model_fell_below_the_pretrained_one():
    value = TrainingValue()
    value.observe(60.0, 0.9, pretrained_agreement=63.0)
    policy = GainPolicy(PERIOD_S)
    assert value.behind_pretrained_by == 3.0 and not policy.reverts(value), "within the noise of one chunk"
    value.observe(55.0, 0.6, pretrained_agreement=70.0)  # the scene changed under the adapted model
    assert policy.reverts(value)
    assert not make_round_policy("fifo", PERIOD_S).reverts(value), "only gain reverts"


def test_a_stream_its_rounds_leave_below_the_pretrained_model_rests_on_it_and_probes_now_and_then():
    """A fast camera under overload: each scene's first chunks meet a model made for the last
    scene. Its rounds cost it accuracy, so it stays on the pretrained model, trains once per
    probe interval, and comes back when a probe shows adapting pays again."""
    policy = GainPolicy(PERIOD_S)
    value = TrainingValue()
    value.trained(10.0, 1.0)
    for held, pretrained in [(80.0, 72.0), (55.0, 70.0), (62.0, 70.0)]:  # adapted, then its scene moved on
        value.observe(held, 0.6, pretrained, advantage=held - pretrained)
    assert value.advantage < 0 and policy.outpaced(value)
    assert policy.reverts(value) and value.behind_pretrained_by == 8.0, "behind at all is enough once outpaced"
    value.observe(75.0, 0.6, 70.0, advantage=-1.0)
    assert policy.outpaced(value) and policy.reverts(value), "ahead on one chunk, but on its record worse than none"
    assert policy.rests(value, 20.0) == "outpaced", "its round would buy it less than the pretrained model has"
    value.observe(70.0, 0.6, 70.0, advantage=None)  # on the pretrained model now: says nothing about adapting
    assert value.adapted_chunks == 4 and policy.outpaced(value)
    probe_at = 10.0 + PERIOD_S * PROBE_PERIODS
    assert policy.rests(value, probe_at - 1.0) == "outpaced" and policy.rests(value, probe_at) is None, "a probe"
    value.probing = policy.outpaced(value)  # what the host marks when it trains an outpaced stream
    value.trained(probe_at, 1.0)
    value.observe(84.0, 0.9, 70.0, advantage=14.0)  # the probe kept up: ahead of the pretrained model
    assert value.probing and policy.outpaced(value) and not policy.reverts(value), "so it keeps the model"
    value.observe(84.0, 0.9, 70.0, advantage=14.0)
    assert not policy.outpaced(value) and policy.rests(value, probe_at + 20.0) != "outpaced"


def test_two_chunks_behind_are_not_yet_evidence_that_a_stream_is_outpaced():
    policy = GainPolicy(PERIOD_S)
    value = TrainingValue()
    value.trained(10.0, 1.0)
    for _ in range(OUTPACED_EVIDENCE - 1):
        value.observe(60.0, 0.6, 70.0, advantage=-10.0)
    assert value.advantage < 0 and not policy.outpaced(value)
