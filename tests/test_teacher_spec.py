import numpy as np
import pytest
import torch

from ams_ray.data.label_store import LabelStore
from ams_ray.models.teacher_network import TeacherNet
from ams_ray.teach.teacher_spec import TeacherSpec, read_spec
from ams_ray.teach.teachers import build_teacher, checked_labels


def test_weights_are_read_where_the_spec_is_given(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "teacher.pt"
    torch.save(TeacherNet().state_dict(), path)
    spec = TeacherSpec.read(f"network:{path}")
    assert spec.weights == path.read_bytes() and spec.source == str(path)
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 64, 3), dtype=np.uint8)
    from_file = checked_labels(build_teacher(f"network:{path}"), frames, [0, 1])
    path.unlink()  # as on a node that never had the file
    assert np.array_equal(checked_labels(build_teacher(spec), frames, [0, 1]), from_file)


def test_a_label_directory_travels_as_its_pngs(tmp_path):
    writer = LabelStore.create(tmp_path / "labels", num_classes=3)
    writer.write(np.array([[0, 1], [2, 1]], np.uint8))
    writer.close()
    spec = TeacherSpec.read(f"labels:{tmp_path / 'labels'}")
    for png in (tmp_path / "labels").iterdir():
        png.unlink()
    labels = checked_labels(build_teacher(spec), np.zeros((1, 2, 2, 3), np.uint8), [0])
    assert labels.tolist() == [[[0, 1], [2, 1]]]


def test_specs_without_files_carry_nothing_and_missing_files_are_named(tmp_path):
    for text in ("oracle", "network", "torchvision:deeplabv3_resnet50:cache", "tests.teacher_plugins:colour"):
        assert read_spec(text) == TeacherSpec(text)
    assert read_spec(TeacherSpec("oracle")) == TeacherSpec("oracle")
    with pytest.raises(FileNotFoundError, match="weights file not found: .*none.pt"):
        TeacherSpec.read(f"torchvision:deeplabv3_resnet50:{tmp_path / 'none.pt'}")
    with pytest.raises(FileNotFoundError, match="no label directory"):
        TeacherSpec.read(f"labels:{tmp_path / 'nothing'}")
