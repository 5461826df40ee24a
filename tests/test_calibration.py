"""Timing one round of a student, the figure a run's capacity is planned from."""

import math

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES
from ams_ray.learn.calibration import round_seconds
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.models.students import build_student


def test_a_round_is_timed_after_a_warm_up_round_on_noise_of_the_run_s_frame_size():
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(iterations=3, batch_size=4),
                                Strategy())
    seconds = round_seconds(distiller, 32, 64, period_s=10.0)
    assert math.isfinite(seconds) and seconds > 0
    assert distiller.sequence == 2, "two real rounds, each making a packet: the warm-up and the timed one"
