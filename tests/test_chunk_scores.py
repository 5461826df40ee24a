"""What the models a device ran bought on a chunk: each frame scored with the version it ran."""

import numpy as np
import pytest

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES
from ams_ray.learn.chunk_scores import (
    HELD_VERSIONS,
    SCORED_FRAMES,
    HeldModels,
    frames_to_score,
    score_chunk,
)
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.models.students import build_student


@pytest.fixture(scope="module")
def scene(labelled_clip, labelled_window):
    frames, labels = labelled_clip
    return labelled_window, frames[:4], labels[:4]


def _trained_twice(window):
    """A distiller at version 2, and its version 1's weights."""
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES),
                                TrainingConfig(iterations=6, batch_size=4, learning_rate=5e-3),
                                Strategy("gradient_guided", 0.1))
    distiller.train_round(window)
    first = [w.clone() for w in distiller.mirror]
    distiller.train_round(window)
    return distiller, first


def test_a_frame_is_scored_with_the_model_the_device_ran_on_it_not_the_newest(scene):
    """The newest update arrived mid-chunk: the first two frames ran version 1, the last two
    version 2. The advantage credits each version with its own frames only."""
    window, frames, labels = scene
    distiller, version_1 = _trained_twice(window)
    assert distiller.version == 2
    newest = distiller.frame_agreements(frames, labels)
    older = distiller.frame_agreements(frames, labels, version_1)
    pretrained = distiller.frame_agreements(frames, labels, distiller.pretrained)
    assert newest != older, "two rounds apart, the versions must score differently for this test to mean anything"
    scores = score_chunk(distiller, frames, labels, (1, 1, 2, 2))
    expected = np.mean([older[0] - pretrained[0], older[1] - pretrained[1],
                        newest[2] - pretrained[2], newest[3] - pretrained[3]])
    assert scores.advantage == pytest.approx(expected)
    assert scores.held == pytest.approx(np.mean(newest)) and scores.pretrained == pytest.approx(np.mean(pretrained))
    mirror_only = score_chunk(distiller, frames, labels)
    assert mirror_only.advantage == pytest.approx(np.mean(newest) - np.mean(pretrained)) != scores.advantage


def test_frames_run_on_the_pretrained_model_or_a_forgotten_version_say_nothing_about_adapting(scene):
    window, frames, labels = scene
    distiller, _ = _trained_twice(window)
    pretrained = distiller.frame_agreements(frames, labels, distiller.pretrained)
    newest = distiller.frame_agreements(frames, labels)
    assert score_chunk(distiller, frames, labels, (0, 0, 0, 0)).advantage is None
    partly = score_chunk(distiller, frames, labels, (0, 0, 2, 2))
    assert partly.advantage == pytest.approx(np.mean([newest[2] - pretrained[2], newest[3] - pretrained[3]]))
    distiller.revert()  # version 3: the pretrained model again
    for _ in range(HELD_VERSIONS):
        distiller.train_round(window)
    assert 1 not in distiller.held and score_chunk(distiller, frames, labels, (1, 1, 1, 1)).advantage is None


def test_the_server_keeps_a_few_versions_and_forgets_the_oldest():
    held = HeldModels()
    assert 0 in held and held.weights(0) is None
    for version in range(1, HELD_VERSIONS + 1):
        held.add(version, [])
    assert 0 not in held and HELD_VERSIONS in held
    held.reset(7, None)
    assert 7 in held and HELD_VERSIONS not in held


def test_a_few_frames_spread_over_the_chunk_are_scored_first_and_last_included():
    assert frames_to_score(3) == [0, 1, 2]
    chosen = frames_to_score(10)
    assert len(chosen) == SCORED_FRAMES and chosen[0] == 0 and chosen[-1] == 9
    assert frames_to_score(0) == []
