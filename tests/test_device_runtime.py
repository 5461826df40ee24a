import subprocess
import sys

import numpy as np
import pytest
import torch

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.device.runtime import DeviceModel
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.window import FrameWindow
from ams_ray.models.students import build_student
from ams_ray.wire.codec import PacketError

H, W = 64, 128


@pytest.fixture(scope="module")
def scene():
    video = SyntheticVideo(21, duration_s=30, fps=5, height=H, width=W)
    frames = np.stack([video.frame(i) for i in range(video.num_frames)])
    labels = np.stack([video.labels(i) for i in range(video.num_frames)])
    return frames, labels


def _torch_labels(model, frames):
    with torch.no_grad():
        return model(torch.from_numpy(frames)).argmax(1).numpy()


@pytest.mark.parametrize("student", ["tiny", "lraspp_mobilenet_v3_large:scratch"])
def test_onnx_matches_torch_before_and_after_updates(student, scene):
    frames, labels = scene
    distiller = OnlineDistiller(build_student(student, NUM_CLASSES), TrainingConfig(iterations=3, batch_size=2),
                                Strategy("gradient_guided", 0.1))
    edge = DeviceModel(distiller.edge_bundle(H, W))
    assert (edge.predict(frames[:8]) == _torch_labels(distiller.model, frames[:8])).mean() >= 0.999

    window = FrameWindow(250)
    window.add(np.arange(len(frames)) / 5, frames, labels)
    for _ in range(2):
        edge.apply(distiller.train_round(window).packet)
    assert edge.version == distiller.version == 2
    agreement = (edge.predict(frames[:8]) == _torch_labels(distiller.model, frames[:8])).mean()
    assert agreement >= 0.999


def test_out_of_order_and_duplicate_packets_are_refused(scene):
    frames, labels = scene
    config = TrainingConfig(iterations=1, batch_size=2, restart_from_pretrained=False)
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), config, Strategy("gradient_guided", 0.05))
    edge = DeviceModel(distiller.edge_bundle(H, W))
    window = FrameWindow(250)
    window.add(np.arange(len(frames)) / 5, frames, labels)
    first, second = distiller.train_round(window).packet, distiller.train_round(window).packet
    with pytest.raises(PacketError, match="earlier packet was lost"):
        edge.apply(second)
    edge.apply(first)
    with pytest.raises(PacketError, match="duplicate or stale"):
        edge.apply(first)
    edge.apply(second)
    assert edge.version == 2


def test_edge_runtime_never_imports_torch():
    code = (
        "import sys, ams_ray.device.runtime, ams_ray.device.client, ams_ray.wire.codec, ams_ray.data.video;"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_frames_are_refused(scene):
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(), Strategy())
    edge = DeviceModel(distiller.edge_bundle(H, W))
    with pytest.raises(ValueError, match="uint8 frames"):
        edge.predict(scene[0][:1].astype(np.float32))


def test_a_bundle_survives_its_bytes(scene):
    """The model a device downloads over HTTP runs exactly as the one handed over in-process."""
    from ams_ray.device.runtime import DeviceModelBundle

    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(), Strategy())
    bundle = distiller.edge_bundle(H, W)
    copy = DeviceModelBundle.from_bytes(bundle.to_bytes())
    assert copy.trainable == bundle.trainable and copy.num_classes == bundle.num_classes
    assert copy.layout.fingerprint == bundle.layout.fingerprint
    np.testing.assert_array_equal(DeviceModel(copy).predict(scene[0][:4]), DeviceModel(bundle).predict(scene[0][:4]))
    with pytest.raises(ValueError, match="not an ams-ray model bundle"):
        DeviceModelBundle.from_bytes(b"<html>proxy error</html>")
