import numpy as np
import pytest

from ams_ray.config import AmsConfig
from ams_ray.data.datasets import materialize_synthetic
from ams_ray.evaluation.simulate import simulate_stream
from ams_ray.learn.strategies import STRATEGIES


@pytest.fixture(scope="module")
def config():
    return AmsConfig.for_profile("cpu").with_overrides(
        video={"height": 64, "width": 128}, training={"iterations": 3, "batch_size": 2}, eval_every=10
    )


def test_adaptive_stream_ships_updates_within_the_bandwidth_it_reports(short_video, config):
    result = simulate_stream(short_video, "oracle", "tiny", config, STRATEGIES["ams_gg10_asr_atr"])
    assert result.duration_s == pytest.approx(40.0)
    assert result.updates_applied >= 2
    assert result.rejected_packets == [] and result.skipped_rounds == []
    assert 0 < result.uplink_kbps < 200 and 0 < result.downlink_kbps < 200
    assert result.miou == pytest.approx(np.mean(result.miou_trace)) and len(result.miou_trace) == 60
    assert result.rate_history and result.period_history


def test_pretrained_baseline_sends_nothing(short_video, config):
    result = simulate_stream(short_video, "oracle", "tiny", config, STRATEGIES["pretrained"])
    assert result.updates_applied == 0 and result.uplink_kbps == 0 and result.downlink_kbps == 0


def test_one_time_trains_once_on_its_window_and_stops_uploading(short_video, config):
    result = simulate_stream(short_video, "oracle", "tiny", config.with_overrides(training={"one_time_window_s": 20}),
                             STRATEGIES["one_time"])
    assert result.updates_sent == result.updates_applied == 1
    assert result.uplink_kbps > 0


def test_an_update_that_lands_after_the_video_is_sent_but_not_applied(short_video, config):
    """Trained at 36 s of a 40 s video on a 1 Kbps downlink, the packet arrives long after the end."""
    slow = config.with_overrides(training={"one_time_window_s": 36}, link={"downlink_kbps": 1.0})
    result = simulate_stream(short_video, "oracle", "tiny", slow, STRATEGIES["one_time"])
    assert result.updates_sent == 1 and result.updates_applied == 0
    assert result.mean_packet_bytes > 0 and result.downlink_kbps == 0
    row = result.row()
    assert row["updates_sent"] == 1 and row["updates_applied"] == 0


def test_student_teacher_class_mismatch_fails_before_running(short_video, config, tmp_path):
    import numpy as np

    from ams_ray.data.label_store import LabelStore

    writer = LabelStore.create(tmp_path / "labels21", num_classes=21)
    writer.write(np.zeros((64, 128), np.uint8))
    writer.close()
    with pytest.raises(ValueError, match="num_classes"):
        simulate_stream(short_video, f"labels:{tmp_path / 'labels21'}", "tiny", config, STRATEGIES["ams_gg10"])


def test_the_device_is_scored_against_truth_and_teacher_apart(short_video, config):
    """A weak pixel teacher: the student learns its labels, the truth stays the exact labels."""
    result = simulate_stream(short_video, "tests.teacher_plugins:colour", "tiny", config, STRATEGIES["ams_gg10"])
    assert 0 < result.teacher_miou < 90
    assert result.miou != result.miou_vs_teacher
    assert result.row()["miou_vs_teacher"] == round(result.miou_vs_teacher, 3)
    exact = simulate_stream(short_video, "oracle", "tiny", config, STRATEGIES["pretrained"])
    assert exact.teacher_miou == 100.0 and exact.miou == exact.miou_vs_teacher


# The headline claim, on the CPU profile and a 60 s synthetic video. Gains of ams_gg10 over
# pretrained against the exact labels, seeds 0-5 (`python -m ams_ray compare --video synthetic
# --seed S --duration 60 --strategies pretrained,ams_gg10 --teacher T`):
#   network  +4.07  +6.14  +3.30  +9.26  +14.66  +18.40
#   oracle  +14.62  +5.84  +2.43  +11.86 +14.45  +18.51
# The bound (2 points) is below every one of them; seed 3 clears it by 7 to 10 points.
CLAIM_MARGIN = 2.0
CLAIM_SEED = 3
BANDWIDTH_BUDGET_KBPS = 300.0  # AMS's figure per device and direction


@pytest.fixture(scope="module")
def claim_video(cache_dir):
    return materialize_synthetic(seed=CLAIM_SEED, duration_s=60.0, height=128, width=256, cache_dir=cache_dir,
                                 progress=False)


@pytest.fixture(scope="module")
def pretrained_on_claim_video(claim_video):
    return simulate_stream(claim_video, "oracle", "tiny", AmsConfig.for_profile("cpu"), STRATEGIES["pretrained"])


@pytest.mark.parametrize("teacher", ["oracle", "network"])
def test_ams_beats_the_pretrained_student_within_the_bandwidth_budget(claim_video, pretrained_on_claim_video,
                                                                       teacher):
    """Against the exact labels, whichever teacher the student learns from."""
    adapted = simulate_stream(claim_video, teacher, "tiny", AmsConfig.for_profile("cpu"), STRATEGIES["ams_gg10"])
    gain = adapted.miou - pretrained_on_claim_video.miou
    assert gain > CLAIM_MARGIN, (adapted.miou, pretrained_on_claim_video.miou)
    assert 0 < adapted.uplink_kbps < BANDWIDTH_BUDGET_KBPS and 0 < adapted.downlink_kbps < BANDWIDTH_BUDGET_KBPS
    assert adapted.updates_applied >= 4 and adapted.rejected_packets == []
