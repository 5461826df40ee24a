import numpy as np
import pytest
import torch

from ams_ray.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.teacher_network import EMBEDDED_TEACHER_WEIGHTS, NetworkTeacher, TeacherNet
from ams_ray.teachers import build_teacher, checked_labels


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A teacher written by the test in the embedded file's format (fp16)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in TeacherNet().state_dict().items()}, path)
    return path


def test_the_network_labels_from_the_pixels(weights_file):
    teacher = build_teacher(f"network:{weights_file}")
    assert isinstance(teacher, NetworkTeacher) and teacher.num_classes == NUM_CLASSES
    video = SyntheticVideo(3, duration_s=10.0, fps=15.0, height=64, width=128)
    frame = video.frame(0)[None]
    labels = checked_labels(teacher, frame, [0])
    assert labels.shape == (1, 64, 128)
    changed = frame.copy()
    changed[:, :32] = 255 - changed[:, :32]  # the same frame index, other pixels
    relabelled = checked_labels(teacher, changed, [0])
    assert not np.array_equal(labels[:, :32], relabelled[:, :32])
    assert np.array_equal(checked_labels(teacher, frame, [123]), labels), "the index plays no part"


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_teacher(f"network:{tmp_path / 'none.pt'}")
