"""Fused rounds give the packets sequential rounds give, within float tolerance (CPU, fixed seeds)."""

import numpy as np
import pytest
import torch

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.fused_training import fusable, train_rounds
from ams_ray.learn.window import FrameWindow
from ams_ray.models.students import TinyStudent, build_student
from ams_ray.wire.codec import decode_packet


def _window(seed: int) -> FrameWindow:
    video = SyntheticVideo(seed, duration_s=12, fps=2, height=48, width=96)
    frames = np.stack([video.frame(i) for i in range(video.num_frames)])
    labels = np.stack([video.labels(i) for i in range(video.num_frames)])
    window = FrameWindow(250)
    window.add(np.arange(len(frames)) / 2, frames, labels)
    return window


def _distillers(strategy: Strategy, count: int, **training) -> list[OnlineDistiller]:
    config = TrainingConfig(**{"iterations": 3, "batch_size": 4, "learning_rate": 2e-3, **training})
    return [OnlineDistiller(build_student("tiny", NUM_CLASSES), config, strategy, stream_id=f"s{k}", seed=k)
            for k in range(count)]


def _dense(distiller: OnlineDistiller, packet: bytes) -> np.ndarray:
    """A packet as one dense delta vector over every trainable coordinate."""
    decoded = decode_packet(packet, distiller.layout)
    sizes = [int(np.prod(shape)) for shape in distiller.layout.shapes]
    dense = [np.zeros(n, np.float32) for n in sizes]
    for t in decoded.tensors:
        if t.coords is None:
            dense[t.index] += t.values
        else:
            dense[t.index][t.coords] += t.values
    return np.concatenate(dense)


@pytest.fixture(scope="module")
def windows():
    return [_window(40 + k) for k in range(3)]


@pytest.mark.parametrize("strategy", [Strategy("full"), Strategy("gradient_guided", 0.1)], ids=["full", "gg10"])
def test_fused_rounds_send_the_packets_sequential_rounds_send(windows, strategy):
    sequential, fused = _distillers(strategy, 3), _distillers(strategy, 3)
    for round_number in range(2):  # the second round starts from the mirror the first advanced
        expected = [d.train_round(w, sampling_rate_fps=0.5) for d, w in zip(sequential, windows)]
        got = train_rounds(fused, windows, [0.5] * 3)
        for d_seq, d_fused, e, g in zip(sequential, fused, expected, got):
            assert g.skipped is None and g.packet is not None
            a, b = _dense(d_seq, e.packet), _dense(d_fused, g.packet)
            # the same coordinates chosen (ties at the top-k cut may flip a handful) ...
            assert np.mean((a != 0) == (b != 0)) > 0.999, f"round {round_number}"
            # ... moved by the same amounts, up to float rounding of the grouped convolution.
            # Adam divides by |g|, so a coordinate whose gradient is ~0 can turn a rounding
            # difference into a step of up to lr: allow that on a handful, no more.
            close = np.isclose(b, a, rtol=0, atol=2e-5)
            assert close.mean() > 0.9999, f"{(~close).sum()} of {close.size} coordinates differ"
            assert np.abs(b - a).max() <= 2e-3 * 3
            assert g.loss == pytest.approx(e.loss, rel=1e-4)
            assert d_fused.sequence == d_seq.sequence and d_fused.version == d_seq.version
            # the RNGs drew the same batches in the same order
            assert d_fused.rng.bit_generator.state == d_seq.rng.bit_generator.state


def test_a_stream_without_frames_is_skipped_alone(windows):
    distillers = _distillers(Strategy("gradient_guided", 0.1), 3)
    results = train_rounds(distillers, [windows[0], FrameWindow(250), windows[2]], [None] * 3)
    assert results[1].skipped == "no labelled frames yet" and results[1].packet is None
    assert results[0].packet is not None and results[2].packet is not None


def test_a_diverging_stream_ships_nothing_and_spares_the_others(windows):
    distillers = _distillers(Strategy("full"), 3)
    with torch.no_grad():
        distillers[1].pretrained[0].fill_(float("nan"))  # its every loss is NaN
    results = train_rounds(distillers, windows, [None] * 3)
    assert results[1].packet is None and "non-finite" in results[1].skipped
    alone = _distillers(Strategy("full"), 3)[0].train_round(windows[0])
    close = np.isclose(_dense(distillers[0], results[0].packet), _dense(distillers[0], alone.packet), rtol=0,
                       atol=2e-5)
    assert close.mean() > 0.9999


def test_different_students_are_not_fused():
    tiny = _distillers(Strategy("full"), 1)
    other_classes = OnlineDistiller(TinyStudent(3), tiny[0].training, Strategy("full"))
    other_training = _distillers(Strategy("full"), 1, iterations=5)[0]
    assert fusable(tiny * 2)
    assert not fusable([tiny[0], other_classes]) and not fusable([tiny[0], other_training])
