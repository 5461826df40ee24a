import numpy as np
import pytest

from ams_ray.config import AmsConfig
from ams_ray.data.video import VideoReader
from ams_ray.evaluation.scoring_labels import label_scored_frames
from ams_ray.evaluation.simulate import simulate_stream
from ams_ray.learn.strategies import STRATEGIES
from ams_ray.teach.teachers import build_teacher, checked_labels

PLUGIN = "tests.teacher_plugins:colour"


@pytest.fixture(scope="module")
def config():
    return AmsConfig.for_profile("cpu").with_overrides(video={"height": 64, "width": 128},
                                                       training={"iterations": 3, "batch_size": 2})


def test_the_scored_frames_carry_the_teachers_own_labels(short_video, config):
    scoring = label_scored_frames(short_video, PLUGIN, config, max_duration_s=12.0)
    reader = VideoReader(short_video.path, 64, 128)
    frames = reader.read_all(max_frames=int(12 * reader.fps))
    scored = list(range(0, len(frames), config.eval_every))
    assert scoring.archive.num_frames == len(scored)
    teacher = build_teacher(PLUGIN)
    for index in scored[::7]:
        np.testing.assert_array_equal(scoring.labels(index), checked_labels(teacher, frames[index:index + 1], [index])[0])
    with pytest.raises(ValueError, match="not scored"):
        scoring.labels(1)


def test_labels_made_once_score_a_strategy_exactly_as_its_own_would(short_video, config):
    """`pretrained` does not train, so every figure of the two runs can be compared exactly."""
    scoring = label_scored_frames(short_video, PLUGIN, config, max_duration_s=20.0)
    alone = simulate_stream(short_video, PLUGIN, "tiny", config, STRATEGIES["pretrained"], max_duration_s=20.0)
    shared = simulate_stream(short_video, PLUGIN, "tiny", config, STRATEGIES["pretrained"], max_duration_s=20.0,
                             scoring=scoring)
    assert shared.miou_vs_teacher == alone.miou_vs_teacher and shared.teacher_miou == alone.teacher_miou
    assert shared.miou == alone.miou
