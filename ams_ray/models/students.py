"""Student models: the tiny CPU network of the embedded default and torchvision's mobile models.

Every student takes raw uint8 NHWC frames and does its own normalisation, so the torch model
on the server and the ONNX graph on the edge start from the same bytes and cannot disagree
about preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ams_ray.models.student_spec import STUDENT_NAMES, StudentSpec
from ams_ray.models.weights import load_state_dict_bytes, load_state_dict_file

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
EMBEDDED_TINY_WEIGHTS = Path(__file__).parent / "assets" / "tiny_student.pt"


class StudentNet(nn.Module):
    """uint8 NHWC frames -> class logits NCHW at input resolution.

    `head_prefixes` names the parameters the `last_layers` strategy trains.
    """

    head_prefixes: tuple[str, ...] = ()

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emit_labels = False  # set only while exporting the edge graph (see onnx_export)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float()
        return (x - self.mean) / self.std

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.normalise(frames)
        logits = F.interpolate(self.logits(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits.argmax(1).to(torch.uint8) if self.emit_labels else logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1, k: int = 3) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyStudent(StudentNet):
    """~0.08 M parameters: plain 3x3 convolutions to stride 8, two dilated context layers,
    a stride-4 skip, and a row-position input channel.

    Plain convolutions rather than depthwise-separable ones: on CPU, PyTorch's depthwise
    backward pass is several times slower per FLOP, and training speed is what the server
    pays for every stream. The row channel lets a network this small learn layout priors
    (sky above, road below) that zero padding alone would teach it only weakly.
    """

    head_prefixes = ("head.", "skip.")

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.stem = _conv_bn(4, 16, stride=2)
        self.down4 = _conv_bn(16, 32, stride=2)
        self.down8 = _conv_bn(32, 48, stride=2)
        self.context = nn.Sequential(_conv_bn(48, 64, dilation=2), _conv_bn(64, 64, dilation=4))
        self.head = nn.Conv2d(64, num_classes, 1)
        self.skip = nn.Conv2d(32, num_classes, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1.0, 1.0, h, device=x.device).view(1, 1, h, 1)
        x = torch.cat([x, rows.expand(n, 1, h, w)], dim=1)
        s4 = self.down4(self.stem(x))
        context = self.context(self.down8(s4))
        out = F.interpolate(self.head(context), size=s4.shape[-2:], mode="bilinear", align_corners=False)
        return out + self.skip(s4)


class TorchvisionStudent(StudentNet):
    """Wraps a torchvision segmentation model (which returns a dict) as a StudentNet."""

    head_prefixes = ("model.classifier.",)

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__(num_classes)
        self.model = model

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _torchvision_builder(name: str) -> Callable[[int], StudentNet]:
    def build(num_classes: int) -> StudentNet:
        from torchvision.models import segmentation

        factory = getattr(segmentation, name)
        model = factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=None)
        return TorchvisionStudent(model, num_classes)

    return build


STUDENTS: dict[str, Callable[[int], StudentNet]] = {
    name: TinyStudent if name == "tiny" else _torchvision_builder(name) for name in STUDENT_NAMES
}


EMBEDDED_TINY_CLASSES = 7  # the synthetic street classes the embedded weights were trained on


def build_student(spec: str | StudentSpec, num_classes: int) -> StudentNet:
    """Build a student from a spec (see `StudentSpec`).

    Plain `tiny` loads the embedded pretrained weights, which exist only for the 7 synthetic
    classes. A student with random weights must be asked for (`:scratch`): starting AMS from
    an untrained student by accident would look like a failure of AMS. The torchvision
    students have no embedded weights, since none can be fetched at run time, so they need
    a file or `:scratch` too.
    """
    spec = StudentSpec.read(spec) if isinstance(spec, str) else spec
    model = STUDENTS[spec.name](num_classes)
    if spec.weights is not None:
        load_matching(model, load_state_dict_bytes(spec.weights, spec.source), source=spec.source)
    elif not spec.scratch:
        weights = _embedded_weights(spec.name, num_classes)
        load_matching(model, load_state_dict_file(weights), source=str(weights))
    return model.eval()


def _embedded_weights(name: str, num_classes: int) -> Path:
    if name != "tiny":
        raise ValueError(
            f"student {name} has no embedded weights: pass {name}:WEIGHTS.pth (e.g. from `python -m ams_ray "
            f"pretrain-student`) or {name}:scratch for random weights"
        )
    if num_classes != EMBEDDED_TINY_CLASSES:
        raise ValueError(
            f"the embedded tiny student knows the {EMBEDDED_TINY_CLASSES} synthetic classes, but the teacher has "
            f"{num_classes} classes (the student's num_classes must match): pretrain one with `python -m ams_ray "
            f"pretrain-student --classes {num_classes} ...` and pass tiny:student.pth, or use tiny:scratch"
        )
    if not EMBEDDED_TINY_WEIGHTS.is_file():
        raise FileNotFoundError(
            f"embedded tiny student weights missing ({EMBEDDED_TINY_WEIGHTS}); "
            "recreate them with `.venv/bin/python scripts/pretrain_tiny_student.py`"
        )
    return EMBEDDED_TINY_WEIGHTS


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load `state`, explaining shape mismatches (e.g. a different class count)."""
    own = model.state_dict()
    if set(own) - set(state) and not (set(own) & set(state)):
        prefixed = {f"model.{k}": v for k, v in state.items()}  # a raw torchvision checkpoint
        if set(prefixed) & set(own):
            state = prefixed
    bad_shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if k in state and state[k].shape != v.shape]
    if bad_shapes:
        raise ValueError(
            f"weights in {source} do not fit this model ({len(bad_shapes)} tensors differ, e.g. "
            f"{bad_shapes[0]}); a different num_classes or architecture produced them"
        )
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"weights in {source} do not match the model: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    model.load_state_dict(state)


def trainable_names(model: StudentNet, last_layers_only: bool) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    if last_layers_only:
        names = [n for n in names if n.startswith(model.head_prefixes)]
    return names
