import numpy as np

from ams_ray.accuracy import frame_miou
from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.device.client import DeviceClient
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.window import FrameWindow
from ams_ray.models.students import build_student


def test_device_samples_at_its_rate_uploads_per_period_and_survives_bad_packets():
    video = SyntheticVideo(8, duration_s=20, fps=10, height=64, width=128)
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(iterations=1, batch_size=2),
                                Strategy())
    edge = DeviceClient("cam", distiller.edge_bundle(64, 128), sampling_rate_fps=2.0, send_period_s=5.0)
    chunks = []
    for i in range(video.num_frames):
        chunk = edge.observe(i, i / video.fps, video.frame(i))
        if chunk:
            chunks.append(chunk)
    assert [c.sequence for c in chunks] == [1, 2, 3]
    assert all(len(c.frame_indices) in (10, 11) for c in chunks)  # 2 frames/s over 5 s
    assert edge.bandwidth.uplink_bytes == sum(c.num_bytes for c in chunks)

    window = FrameWindow(250)
    frames = np.stack([video.frame(i) for i in range(0, 200, 10)])
    window.add(np.arange(20.0), frames, np.stack([video.labels(i) for i in range(0, 200, 10)]))
    packet = distiller.train_round(window, sampling_rate_fps=0.5).packet
    corrupt = packet[:-3] + b"xyz"
    assert not edge.apply_packet(corrupt) and "checksum" in edge.rejected_packets[0]
    assert edge.apply_packet(packet) and edge.updates_applied == 1
    assert edge.sampling_rate_fps == 0.5, "the rate rides on the packet"
    prediction = edge.evaluate(0.0, video.frame(0), video.labels(0), teacher_labels=np.zeros((64, 128), np.uint8))
    assert prediction.shape == (64, 128)
    assert len(edge.trace.values) == len(edge.teacher_trace.values) == 1
    assert edge.trace.values[0] == frame_miou(video.labels(0), prediction, edge.model.num_classes)
    assert edge.teacher_trace.values[0] == frame_miou(np.zeros((64, 128), np.uint8), prediction,
                                                      edge.model.num_classes)


def test_the_baseline_stays_pretrained_while_the_model_is_updated():
    video = SyntheticVideo(9, duration_s=20, fps=10, height=64, width=128)
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(iterations=5, batch_size=4),
                                Strategy())
    bundle = distiller.edge_bundle(64, 128)
    edge = DeviceClient("cam", bundle, sampling_rate_fps=1.0, send_period_s=5.0, baseline=True)
    frame, truth = video.frame(0), video.labels(0)
    edge.evaluate(0.0, frame, truth)
    assert edge.baseline_trace.values == edge.trace.values  # the same model so far
    window = FrameWindow(250)
    window.add(np.arange(20.0), np.stack([video.frame(i) for i in range(0, 200, 10)]),
               np.stack([video.labels(i) for i in range(0, 200, 10)]))
    assert edge.apply_packet(distiller.train_round(window).packet)
    edge.evaluate(1.0, frame, truth)
    assert edge.baseline_trace.values[1] == edge.baseline_trace.values[0]
    assert edge.trace.values[1] != edge.trace.values[0]
    plain = DeviceClient("cam", bundle, 1.0, 5.0)  # without a baseline only the live model is scored
    plain.evaluate(0.0, frame, truth)
    assert len(plain.trace.values) == 1 and plain.baseline_trace.values == []


def test_the_device_reports_the_version_it_ran_on_each_sampled_frame(labelled_clip, labelled_window):
    """An update applied mid-chunk: the server must know which frames ran which model (`chunk_scores`)."""
    frames = labelled_clip[0]
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), TrainingConfig(iterations=2, batch_size=4),
                                Strategy("gradient_guided", 0.1))
    device = DeviceClient("s", distiller.edge_bundle(64, 128), sampling_rate_fps=2.0, send_period_s=2.0)
    device.observe(0, 0.0, frames[0])
    device.observe(1, 0.5, frames[1])
    assert device.apply_packet(distiller.train_round(labelled_window).packet)
    device.observe(2, 1.0, frames[2])
    chunk = device.observe(3, 2.0, frames[3])
    assert chunk is not None and chunk.frame_versions == (0, 0, 1, 1)
