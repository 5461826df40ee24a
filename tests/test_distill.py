import logging

import numpy as np
import pytest
import torch

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES
from ams_ray.learn.chunk_scores import score_chunk
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.window import FrameWindow
from ams_ray.models.students import build_student
from ams_ray.wire.codec import decode_packet


@pytest.fixture(scope="module")
def window(labelled_window):
    return labelled_window


def _distiller(strategy, **training):
    config = TrainingConfig(**{"iterations": 4, "batch_size": 4, **training})
    return OnlineDistiller(build_student("tiny", NUM_CLASSES), config, strategy)


def test_gradient_guided_touches_only_the_chosen_fraction(window):
    distiller = _distiller(Strategy("gradient_guided", 0.05))
    before = [p.detach().clone() for p in distiller.params]
    result = distiller.train_round(window)
    total = sum(p.numel() for p in distiller.params)
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(distiller.params, before))
    assert result.coords == pytest.approx(0.05 * total, rel=0.02)
    assert 0 < changed <= result.coords
    packet = decode_packet(result.packet, distiller.layout)
    assert packet.num_coords == result.coords


def test_last_layers_strategy_trains_only_the_head(window):
    distiller = _distiller(Strategy("last_layers"))
    assert all(n.startswith(("head.", "skip.")) for n in distiller.layout.names)
    backbone = distiller.model.stem[0].weight.detach().clone()
    distiller.train_round(window)
    assert torch.equal(backbone, distiller.model.stem[0].weight)


def test_training_on_a_scene_lowers_its_loss(window):
    distiller = _distiller(Strategy("full"), iterations=15, learning_rate=3e-3)
    first = distiller.train_round(window).loss
    for _ in range(3):
        last = distiller.train_round(window).loss
    assert last < first


def test_restart_mode_patches_version_zero_and_continue_mode_the_last(window):
    restart = _distiller(Strategy("gradient_guided", 0.1), restart_from_pretrained=True)
    keep_going = _distiller(Strategy("gradient_guided", 0.1), restart_from_pretrained=False)
    for _ in range(2):
        a, b = restart.train_round(window).packet, keep_going.train_round(window).packet
    assert decode_packet(a, restart.layout).base_version == 0
    assert decode_packet(b, keep_going.layout).base_version == 1


def test_nan_loss_skips_the_update_and_keeps_the_model(window, caplog):
    distiller = _distiller(Strategy("full"), iterations=6)
    distiller.train_round(window)
    mirror = [m.clone() for m in distiller.mirror]
    version = distiller.version
    distiller.training = distiller.training.model_copy(update={"learning_rate": 1e30})  # diverges
    with caplog.at_level(logging.WARNING):
        result = distiller.train_round(window)
    assert result.packet is None and "non-finite loss" in result.skipped
    assert "skipped update" in caplog.text
    assert distiller.version == version
    assert all(torch.equal(m, n) for m, n in zip(mirror, distiller.mirror))
    assert all(torch.equal(p.detach(), m) for p, m in zip(distiller.params, mirror))


def test_empty_window_is_a_logged_skip():
    result = _distiller(Strategy()).train_round(FrameWindow(250))
    assert result.packet is None and result.skipped == "no labelled frames yet"


def test_window_evicts_old_frames_and_favours_recent_ones():
    win = FrameWindow(horizon_s=10)
    frames = np.zeros((30, 2, 2, 3), np.uint8)
    labels = np.arange(30, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    win.add(np.arange(30, dtype=float), frames, labels)
    assert len(win) == 11  # t = 19 .. 29
    _, batch = win.sample(np.random.default_rng(0), 200, recent_fraction=1.0, recent_s=2.0)
    assert set(np.unique(batch[:, 0, 0])) <= {27, 28, 29}


def test_a_revert_puts_the_device_and_the_mirror_back_on_the_pretrained_model(window):
    from ams_ray.device.client import DeviceClient

    distiller = _distiller(Strategy("gradient_guided", 0.1), iterations=20, learning_rate=5e-3)
    frames, labels = window.sample(np.random.default_rng(0), 8, 0.0, 10.0)
    device = DeviceClient("s", distiller.edge_bundle(64, 128), 1.0, 10.0)
    first = score_chunk(distiller, frames, labels)
    assert distiller.at_pretrained and first.held == first.pretrained and first.advantage is None
    assert device.apply_packet(distiller.train_round(window).packet) and not distiller.at_pretrained
    trained = score_chunk(distiller, frames, labels)
    assert trained.held != trained.pretrained == first.pretrained
    assert trained.advantage == pytest.approx(trained.held - trained.pretrained), "no versions: the mirror stands in"
    packet = distiller.revert()
    assert len(packet) < 300 and distiller.at_pretrained, "no deltas: a few bytes"
    assert device.apply_packet(packet) and device.model.version == distiller.version == 2
    reverted = score_chunk(distiller, frames, labels)
    assert (reverted.held, reverted.advantage) == (first.pretrained, None)
    replayed = _distiller(Strategy("gradient_guided", 0.1))
    replayed.replay(packet)
    assert all(torch.equal(m, p) for m, p in zip(replayed.mirror, replayed.pretrained)), "the log replays it"
