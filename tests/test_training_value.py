"""What a round is worth to a stream: its model's distance to the teacher, drift, and cost."""

import pytest

from ams_ray.learn.training_value import (
    ADVANTAGE_SMOOTHING,
    CEILING_DECAY,
    DRIFT_WEIGHT,
    TrainingValue,
)


def test_a_model_far_from_its_teacher_on_a_moving_scene_is_worth_more_per_second():
    settled, changed = TrainingValue(), TrainingValue()
    settled.observe(90.0, 0.98)
    changed.observe(55.0, 0.70)
    assert settled.expected_gain == 10.0 + DRIFT_WEIGHT * 2.0
    assert changed.expected_gain > settled.expected_gain
    settled.trained(10.0, 2.0)
    changed.trained(10.0, 2.0)
    assert changed.per_second > settled.per_second
    cheap = TrainingValue()
    cheap.observe(90.0, 0.98)
    cheap.trained(10.0, 0.5)
    assert cheap.per_second == 4 * settled.per_second, "half the round time is worth twice per second (smoothed)"


def test_signals_are_smoothed_and_an_unmeasured_stream_counts_as_far_from_its_teacher():
    value = TrainingValue()
    assert value.expected_gain == 100.0
    value.observe(80.0, None)
    value.observe(60.0, float("nan"))
    assert value.agreement == 70.0 and value.phi is None


def test_the_longest_wait_runs_from_the_first_unanswered_ask_and_rest_stops_it():
    value = TrainingValue()
    value.asked(10.0)
    value.asked(20.0)  # stepped aside and asked again: still the same wait
    value.trained(40.0, 1.0)
    assert value.longest_wait_s == 30.0 and value.since_trained_s(50.0) == 10.0
    value.asked(50.0)
    value.rested()  # it hibernated instead: not waiting
    value.asked(90.0)
    value.trained(95.0, 1.0)
    assert value.longest_wait_s == 30.0


def test_a_wait_ends_when_the_round_is_answered_not_when_it_fell_due():
    value = TrainingValue()
    value.asked(10.0)
    value.trained(10.0, 1.0, answered_s=40.0)  # due at 10 s of video, trained when the stream was at 40 s
    assert value.longest_wait_s == 30.0 and value.last_trained_s == 10.0


def test_what_a_round_can_win_is_measured_up_to_where_training_got_the_stream_not_up_to_100():
    fixed = TrainingValue()
    fixed.observe(62.0, 0.99)
    assert fixed.ceiling is None and fixed.expected_gain == pytest.approx(38.0 + DRIFT_WEIGHT), "untrained: up to 100"
    fixed.trained(10.0, 1.0)
    fixed.observe(80.0, 0.99)
    fixed.observe(80.0, 0.99)
    assert fixed.ceiling == 75.5 and fixed.expected_gain == pytest.approx(DRIFT_WEIGHT), "levelled off near 80"
    for _ in range(10):
        fixed.observe(70.0, 0.99)  # a harder stretch: the ceiling sinks towards what is reached now
    assert 70.0 < fixed.ceiling < 75.5 - 9 * CEILING_DECAY + 1e-9


def test_what_adapting_bought_is_smoothed_over_the_chunks_that_ran_an_adapted_model_only():
    value = TrainingValue()
    value.observe(70.0, 0.9, 70.0, advantage=None)  # ran the pretrained model
    assert (value.advantage, value.adapted_chunks) == (None, 0)
    value.observe(80.0, 0.9, 70.0, advantage=10.0)
    value.observe(60.0, 0.6, 72.0, advantage=-6.0)
    assert value.adapted_chunks == 2 and value.advantage == pytest.approx(2.0), "a plain mean while evidence is thin"
    assert value.behind_pretrained_by == 12.0, "the newest chunk, not smoothed"
    for _ in range(20):
        value.observe(80.0, 0.9, 70.0, advantage=10.0)
    before = value.advantage
    value.observe(60.0, 0.6, 72.0, advantage=-6.0)
    assert value.advantage == pytest.approx(before + ADVANTAGE_SMOOTHING * (-6.0 - before)), "then a running average"
