import numpy as np
import pytest
import torch
from torchvision.models import segmentation

from ams_ray.data.label_store import LabelStore
from ams_ray.data.video import VideoReader
from ams_ray.teach.teachers import TeacherPluginError, build_teacher, checked_labels


def test_oracle_returns_the_exact_synthetic_labels(short_video):
    from ams_ray.data.synthetic import SyntheticVideo

    teacher = build_teacher("oracle", short_video.label_key)
    frames = VideoReader(short_video.path, 64, 128).read_all(max_frames=3)
    labels = checked_labels(teacher, frames, [0, 1, 2])
    truth = SyntheticVideo(7, duration_s=40.0, fps=15.0, height=64, width=128)
    assert all(np.array_equal(labels[i], truth.labels(i)) for i in range(3))
    with pytest.raises(ValueError, match="only synthetic videos carry"):
        build_teacher("oracle", str(short_video.path))  # a path is not a video the oracle knows


def test_label_directory_and_out_of_range_ids(tmp_path):
    writer = LabelStore.create(tmp_path / "labels", num_classes=3)
    writer.write(np.array([[0, 1], [2, 1]], np.uint8))
    writer.close()
    teacher = build_teacher(f"labels:{tmp_path / 'labels'}")
    assert checked_labels(teacher, np.zeros((1, 4, 4, 3), np.uint8), [0]).shape == (1, 4, 4)
    (tmp_path / "labels" / "meta.json").write_text('{"num_classes": 2, "frames": 1}')
    with pytest.raises(ValueError, match="out of range for 2 classes"):
        build_teacher(f"labels:{tmp_path / 'labels'}").label(np.zeros((1, 2, 2, 3), np.uint8), [0])


def test_torchvision_teacher_from_a_local_weight_file(tmp_path):
    torch.manual_seed(0)
    model = segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=False)
    path = tmp_path / "teacher.pth"
    torch.save(model.state_dict(), path)
    teacher = build_teacher(f"torchvision:deeplabv3_resnet50:{path}")
    assert teacher.num_classes == 5
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 64, 3), dtype=np.uint8)
    labels = checked_labels(teacher, frames, [0, 1])
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255) / (
            torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
        expected = model(x)["out"].argmax(1).numpy()
    assert np.array_equal(labels, expected)


def test_torchvision_cache_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not in torchvision's cache"):
        build_teacher("torchvision:deeplabv3_resnet101:cache")


class ThreeClassTeacher:
    """Written to the documented protocol, with a bug: green pixels get class 5 of 3."""

    num_classes = 3

    def label(self, frames, frame_indices):
        assert len(frame_indices) == len(frames)
        return (frames[..., 0] > 128).astype(np.uint8) + 5 * (frames[..., 1] > 250)


def make_teacher():
    return ThreeClassTeacher()


def test_a_plugin_written_to_the_protocol_labels_and_its_bad_output_is_named():
    teacher = build_teacher("tests.test_teachers:make_teacher")
    frames = np.zeros((1, 4, 4, 3), np.uint8)
    frames[0, 0, 0] = (200, 0, 0)
    assert checked_labels(teacher, frames, [0])[0, 0, 0] == 1
    frames[0, 1, 1] = (0, 255, 0)
    with pytest.raises(ValueError, match="teacher plugin tests.test_teachers:make_teacher returned label id 5 "
                                         "outside 0..2"):
        checked_labels(teacher, frames, [0])


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nosuchmodule:make", "teacher plugin nosuchmodule:make: cannot import module 'nosuchmodule' "
                              "(No module named 'nosuchmodule'); it must be importable"),
        ("tests.teacher_plugins:nothing", "module 'tests.teacher_plugins' has no function 'nothing'"),
        ("tests.teacher_plugins:failing_factory", "failing_factory() raised OSError: model file people.pth"),
        ("tests.teacher_plugins:frames_only", "`label` cannot be called as label(frames, frame_indices)"),
        ("tests.teacher_plugins:FramesOnlyTeacher", "`label` cannot be called as label(frames, frame_indices)"),
    ],
)
def test_a_plugin_that_cannot_work_is_refused_by_name(spec, message):
    with pytest.raises(TeacherPluginError) as caught:
        build_teacher(spec)
    assert message in str(caught.value)


def test_a_plugin_that_fails_on_a_batch_is_named():
    teacher = build_teacher("tests.teacher_plugins:broken")
    with pytest.raises(TeacherPluginError, match="teacher plugin tests.teacher_plugins:broken failed on a batch "
                                                 "of 2 frames: RuntimeError: this teacher's model is broken"):
        teacher.label(np.zeros((2, 4, 4, 3), np.uint8), [0, 1])


def test_unknown_teachers_are_explained(short_video):
    with pytest.raises(ValueError, match="unknown teacher 'mystery'"):
        build_teacher("mystery")
    with pytest.raises(ValueError, match="only synthetic videos"):
        build_teacher("oracle", "/tmp/some-real-video.mp4")
