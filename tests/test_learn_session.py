import numpy as np
import pytest

from ams_ray.config import AmsConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.data.video import encode_chunk
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.session import LabellingFailed, StreamSession
from ams_ray.models.students import build_student
from ams_ray.wire.messages import SampleChunk


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(44, duration_s=60, fps=5, height=64, width=128)


def _session(asr=True, atr=True):
    config = AmsConfig.for_profile("cpu").with_overrides(training={"iterations": 2, "batch_size": 2})
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), config.training, Strategy())
    return StreamSession(distiller, lambda frames, idx: np.zeros(frames.shape[:3], np.uint8), NUM_CLASSES,
                         config, asr=asr, atr=atr)


def _chunk(video, seq, indices):
    frames = np.stack([video.frame(i) for i in indices])
    return SampleChunk("cam", seq, tuple(indices), tuple(i / video.fps for i in indices), encode_chunk(frames))


def test_chunks_fill_the_window_and_duplicates_and_gaps_are_counted(video):
    session = _session()
    session.receive(_chunk(video, 1, [0, 5, 10]))
    session.receive(_chunk(video, 1, [0, 5, 10]))
    session.receive(_chunk(video, 3, [20, 25]))
    assert len(session.window) == 5
    assert session.stats.duplicate_chunks == 1 and session.stats.missing_chunks == 1


def test_identical_labels_mean_a_static_scene(video):
    """The labeller above returns the same map every time: phi = 1, so ASR slows and ATR sleeps."""
    session = _session()
    rate = session.sampling_rate_fps
    for seq in range(1, 4):
        new_rate = session.receive(_chunk(video, seq, [seq * 10, seq * 10 + 5]))
        assert new_rate < rate or new_rate == session.asr.config.min_rate_fps
        rate = new_rate
    assert session.atr.period_s > session.atr.base_period_s
    result = session.train(now_s=30.0)
    assert result.packet is not None and session.stats.rounds == 1


def test_a_chunk_the_teacher_cannot_label_is_skipped_and_counted(video):
    config = AmsConfig.for_profile("cpu")
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), config.training, Strategy())

    def failing(frames, idx):
        raise LabellingFailed("teacher replica died")

    session = StreamSession(distiller, failing, NUM_CLASSES, config, asr=True, atr=True)
    assert session.receive(_chunk(video, 1, [0, 5])) == config.sampling.initial_rate_fps
    assert session.stats.unlabelled_chunks == 1 and len(session.window) == 0


def test_a_device_whose_clock_restarts_trains_again_on_the_new_clock(video):
    """A device that comes back plays its video from 0 again: the old window and the round
    due on the old clock must not hold the stream up."""
    session = _session(asr=False, atr=False)
    for seq, start in enumerate(range(0, 200, 50), start=1):  # 40 s of video, a round due every 10 s
        session.receive(_chunk(video, seq, [start, start + 25]))
        if session.due(start / video.fps + 5):
            session.train(start / video.fps + 5)
    assert session.window.newest_s == 35.0 and session.atr.next_due_s > 40.0
    session.receive(_chunk(video, 5, [0, 25]))  # the same device, its clock back at 0 s
    assert len(session.window) == 2 and session.window.newest_s == 5.0
    assert not session.due(5.0) and session.due(10.0)
