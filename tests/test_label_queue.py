"""The teacher replica's queue serves training before scoring and sheds scoring, in order, not time."""

import asyncio

import pytest

from ams_ray.teach.label_queue import LabelQueue, ScoringShed


def _run(coroutine):
    return asyncio.run(coroutine)


def test_a_training_request_goes_before_every_scoring_request_queued_ahead_of_it():
    async def scenario():
        queue = LabelQueue(max_batch=4, max_scoring_waiting=100, max_scoring_wait_s=60.0)
        scoring = [queue.put(f"score-{k}", "scoring") for k in range(10)]
        training = [queue.put(f"train-{k}", "training") for k in range(6)]
        served = []
        for _ in range(4):
            purpose, batch = await queue.next_batch(fill_wait_s=0.0)
            served.append((purpose, [w.request for w in batch]))
        return served, scoring, training

    served, _, _ = _run(scenario())
    assert served == [("training", ["train-0", "train-1", "train-2", "train-3"]),
                      ("training", ["train-4", "train-5"]),
                      ("scoring", ["score-0", "score-1", "score-2", "score-3"]),
                      ("scoring", ["score-4", "score-5", "score-6", "score-7"])]


def test_a_training_request_arriving_while_a_scoring_batch_fills_takes_its_place():
    async def scenario():
        queue = LabelQueue(max_batch=4, max_scoring_waiting=100, max_scoring_wait_s=60.0)
        queue.put("score-0", "scoring")
        forming = asyncio.ensure_future(queue.next_batch(fill_wait_s=30.0))
        await asyncio.sleep(0)  # the scoring batch is waiting to fill
        for k in range(4):
            queue.put(f"train-{k}", "training")
        purpose, batch = await forming
        return purpose, [w.request for w in batch], queue.length("scoring")

    assert _run(scenario()) == ("training", ["train-0", "train-1", "train-2", "train-3"], 1)


def test_scoring_past_its_bound_is_shed_oldest_first_and_counted():
    async def scenario():
        queue = LabelQueue(max_batch=8, max_scoring_waiting=3, max_scoring_wait_s=60.0)
        futures = [queue.put(f"score-{k}", "scoring") for k in range(5)]
        purpose, batch = await queue.next_batch(fill_wait_s=0.0)
        return futures, purpose, [w.request for w in batch], queue.counts

    futures, purpose, batch, counts = _run(scenario())
    assert purpose == "scoring" and batch == ["score-2", "score-3", "score-4"]
    for shed in futures[:2]:
        with pytest.raises(ScoringShed, match="more than 3 scoring requests waiting"):
            shed.result()
    assert counts.shed == 2 and counts.arrived == {"training": 0, "scoring": 5}
    assert counts.served == {"training": 0, "scoring": 3}


def test_scoring_that_waited_too_long_behind_training_is_shed():
    async def scenario():
        queue = LabelQueue(max_batch=2, max_scoring_waiting=10, max_scoring_wait_s=0.0)
        stale = queue.put("score-0", "scoring")
        queue.put("train-0", "training")
        purpose, batch = await queue.next_batch(fill_wait_s=0.0)
        return stale, purpose, [w.request for w in batch], queue.length("scoring")

    stale, purpose, batch, left = _run(scenario())
    assert (purpose, batch, left) == ("training", ["train-0"], 0)
    with pytest.raises(ScoringShed, match="behind training"):
        stale.result()


def test_a_purpose_outside_the_two_is_refused():
    async def scenario():
        LabelQueue(2, 2, 1.0).put("x", "evaluation")

    with pytest.raises(ValueError, match="purpose must be one of"):
        _run(scenario())
