import pytest
import torch
from torchvision.models import segmentation

from ams_ray.models.student_spec import StudentSpec
from ams_ray.models.students import EMBEDDED_TINY_WEIGHTS, build_student, trainable_names


def test_tiny_student_is_small_and_pretrained():
    model = build_student("tiny", 7)
    assert sum(p.numel() for p in model.parameters()) <= 500_000
    assert EMBEDDED_TINY_WEIGHTS.is_file()
    embedded = torch.load(EMBEDDED_TINY_WEIGHTS, weights_only=True)
    assert torch.equal(model.state_dict()["head.weight"], embedded["head.weight"])
    frames = torch.zeros(2, 64, 128, 3, dtype=torch.uint8)
    assert model(frames).shape == (2, 7, 64, 128)


def test_torchvision_student_loads_a_weight_file(tmp_path):
    """Real loading path, with a checkpoint the test writes (no hub access here)."""
    reference = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=7)
    path = tmp_path / "lraspp.pth"
    torch.save(reference.state_dict(), path)
    model = build_student(f"lraspp_mobilenet_v3_large:{path}", 7)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[f"model.{name}"], tensor)
    assert all(n.startswith("model.classifier.") for n in trainable_names(model, last_layers_only=True))


def test_class_count_mismatch_is_explained(tmp_path):
    with pytest.raises(ValueError, match="knows the 7 synthetic classes, but the teacher has 21 .*pretrain-student "
                                         "--classes 21.*tiny:scratch"):
        build_student("tiny", 21)
    path = tmp_path / "dl.pth"
    torch.save(segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                         num_classes=21).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit this model"):
        build_student(f"deeplabv3_mobilenet_v3_large:{path}", 7)


def test_unknown_student_and_bad_weight_file(tmp_path):
    with pytest.raises(ValueError, match="unknown student 'mobilenet'"):
        build_student("mobilenet", 7)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights"):
        build_student(f"tiny:{bad}", 7)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_student(f"tiny:{tmp_path / 'missing.pt'}", 7)


def test_random_weights_only_when_asked_for():
    scratch = build_student("tiny:scratch", 2)
    assert scratch.head.weight.shape[0] == 2
    embedded = torch.load(EMBEDDED_TINY_WEIGHTS, weights_only=True)
    assert not torch.equal(build_student("tiny:scratch", 7).stem[0].weight, embedded["stem.0.weight"])
    assert build_student("lraspp_mobilenet_v3_large:scratch", 2).num_classes == 2
    with pytest.raises(ValueError, match="has no embedded weights: pass lraspp_mobilenet_v3_large:WEIGHTS.pth"):
        build_student("lraspp_mobilenet_v3_large", 2)


def test_a_spec_carries_its_weights_as_bytes(tmp_path):
    """What a trainer on another node receives: it builds the student without the file."""
    path = tmp_path / "student.pth"
    torch.save(build_student("tiny:scratch", 2).state_dict(), path)
    spec = StudentSpec.read(f"tiny:{path}")
    path.unlink()
    model = build_student(spec, 2)
    assert spec.source == str(path) and model.head.weight.shape[0] == 2
    assert StudentSpec.read("tiny:scratch") == StudentSpec("tiny", scratch=True)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        StudentSpec.read(f"tiny:{path}")
