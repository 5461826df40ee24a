"""A stream's labelling backlog lowers its device's rate, then sheds."""

import pytest

from ams_ray.service.label_backlog import BacklogPolicy


def test_the_rate_halves_for_each_chunk_waiting_beyond_one_down_to_the_floor():
    policy = BacklogPolicy(max_chunks=4, min_rate_fps=0.1)
    assert [policy.rate_to_tell(1.6, waiting) for waiting in range(7)] == [1.6, 1.6, 0.8, 0.4, 0.2, 0.1, 0.1]


def test_chunks_beyond_the_bound_are_shed():
    policy = BacklogPolicy(max_chunks=2)
    assert [policy.accepts(waiting) for waiting in range(4)] == [True, True, False, False]


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="max_chunks must be at least 1"):
        BacklogPolicy(max_chunks=0)
