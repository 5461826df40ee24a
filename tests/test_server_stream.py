import numpy as np
import pytest

from ams_ray.config import AmsConfig
from ams_ray.distill import OnlineDistiller, Strategy
from ams_ray.messages import SampleChunk
from ams_ray.server_stream import StreamSession
from ams_ray.students import build_student
from ams_ray.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.video import encode_chunk


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
