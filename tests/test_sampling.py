import numpy as np
import pytest

from ams_ray.config import SamplingConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.learn.sampling import AdaptiveSamplingRate, AdaptiveTrainingPeriod, phi_score


def _scene_labels(static: bool, seconds: int = 20) -> list[np.ndarray]:
    """Labels sampled at 1 frame/s from a synthetic scene that is static or panning."""
    for seed in range(100):
        video = SyntheticVideo(seed, duration_s=120, fps=5, height=64, width=128)
        scene = video._scene(0)
        if (scene.pan_speed == 0) == static and (static or abs(scene.pan_speed) > 20):
            return [video.labels(int(t * video.fps)) for t in range(seconds)]
    raise AssertionError("no such scene among the first 100 seeds")


def test_phi_is_high_on_static_scenes_and_lower_on_moving_ones():
    static, moving = phi_score(_scene_labels(True), NUM_CLASSES), phi_score(_scene_labels(False), NUM_CLASSES)
    assert static > SamplingConfig().static_phi > 0.75 > moving
    assert phi_score([np.zeros((2, 2), np.uint8)], NUM_CLASSES) is None


@pytest.mark.parametrize("rule", ["paper", "proportional"])
def test_sampling_rate_falls_on_static_and_rises_on_change(rule):
    config = SamplingConfig(rule=rule)
    asr = AdaptiveSamplingRate(config)
    for _ in range(10):
        asr.update(phi_score(_scene_labels(True)[:10], NUM_CLASSES))
    assert asr.rate_fps == config.min_rate_fps
    for _ in range(10):
        asr.update(0.5)  # a scene cut: samples differ a lot
    assert asr.rate_fps == config.max_rate_fps
    disabled = AdaptiveSamplingRate(config, enabled=False)
    assert disabled.update(0.5) == config.initial_rate_fps


def test_training_period_hibernates_on_static_scenes_and_wakes_on_change():
    config = SamplingConfig(max_period_factor=4)
    atr = AdaptiveTrainingPeriod(10.0, config)
    static_phi = phi_score(_scene_labels(True), NUM_CLASSES)
    now = 0.0
    for _ in range(4):
        now += 10
        atr.observe(static_phi, now)
        atr.trained(now)
    assert atr.period_s == 40.0 and not atr.due(now + 20)
    moving_phi = phi_score(_scene_labels(False), NUM_CLASSES)
    atr.observe(moving_phi, now + 5)
    assert atr.period_s == 10.0 and atr.due(now + 5), "a change wakes training at once"
    inert = AdaptiveTrainingPeriod(10.0, config, enabled=False)
    inert.observe(static_phi, 10)
    assert inert.period_s == 10.0


def test_paper_rule_steps_by_tanh_around_its_phi_target():
    config = SamplingConfig(rule="paper", max_rate_fps=1.0)
    asr = AdaptiveSamplingRate(config)
    assert asr.update(0.6) == 1.0  # at the target: no change
    assert asr.update(0.9) == pytest.approx(1.0 - 0.2 * np.tanh(20 * 0.3))  # similar samples: rate falls ~0.2
    assert asr.update(0.61) == pytest.approx(asr.rate_fps)
    falling = asr.rate_fps
    assert asr.update(0.62) == pytest.approx(falling - 0.2 * np.tanh(0.4))  # a small step near the target
    for _ in range(20):
        asr.update(0.95)
    assert asr.rate_fps == config.min_rate_fps
    for _ in range(20):
        asr.update(0.2)
    assert asr.rate_fps == 1.0  # clipped at the paper's 1 frame/s here


def test_the_two_rules_move_differently_on_the_same_phi():
    """At phi 0.7 the proportional rule (change 0.3 > target 0.25) raises the rate; the
    paper's (phi above 0.6) lowers it: they are different controllers, not two tunings."""
    proportional = AdaptiveSamplingRate(SamplingConfig(rule="proportional"))
    paper = AdaptiveSamplingRate(SamplingConfig(rule="paper"))
    assert proportional.update(0.7) > 1.0 > paper.update(0.7)
