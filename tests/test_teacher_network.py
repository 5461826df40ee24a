import numpy as np
import pytest
import torch

from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.models.teacher_network import EMBEDDED_TEACHER_WEIGHTS, NetworkTeacher, TeacherNet
from ams_ray.teach.teachers import build_teacher, checked_labels


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


def test_the_embedded_teacher_labels_unseen_scenes_better_than_the_student():
    """Seeds 500000+ are neither the teacher's (300000+, 400000+) nor the student's."""
    from ams_ray.accuracy import batch_miou
    from ams_ray.evaluation.pretraining import synthetic_frames
    from ams_ray.models.students import build_student

    assert EMBEDDED_TEACHER_WEIGHTS.stat().st_size < 25e6
    teacher = build_teacher("network")
    scenes = synthetic_frames(500_000, 6, 2, "scenes")
    student = build_student("tiny", NUM_CLASSES)
    with torch.no_grad():
        student_labels = student(torch.from_numpy(scenes.frames)).argmax(1).numpy()
    teacher_miou = np.mean(batch_miou(scenes.labels, teacher.label(scenes.frames, [0] * 12), NUM_CLASSES))
    student_miou = np.mean(batch_miou(scenes.labels, student_labels, NUM_CLASSES))
    assert teacher_miou > student_miou + 5, (teacher_miou, student_miou)


def test_the_attention_block_starts_as_the_identity():
    """A teacher trained without the block (`train_teacher.py --init`) carries over unchanged."""
    torch.manual_seed(0)
    model = TeacherNet().eval()
    cells = torch.randn(2, 192, 8, 16)
    assert torch.equal(model.context(cells), cells)
    frames = torch.randint(0, 255, (1, 64, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        before = model(frames)
        torch.nn.init.normal_(model.context.attention.out_proj.weight)
        assert not torch.allclose(model(frames), before)
