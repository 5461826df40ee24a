"""The embedded teacher: a segmentation network about 40 times the student, trained on generic
synthetic scenes (`scripts/train_teacher.py`), that labels frames from their pixels.

AMS's server runs a teacher far larger than the device's student. With exact labels (`oracle`)
the shared teacher does no work, and the server's largest cost in AMS goes unmeasured. This
network is that work: it has to see each frame's pixels, and it errs the way a real model does,
so the student learns a teacher's labels rather than the truth.

Architecture: an encoder to stride 16 (residual blocks; dilations 2, 4 and 8 at the bottom for
context the scene's layout needs), one self-attention layer over the stride-16 cells, and a
decoder back to stride 2 with skips, plus the same row-position channel as the tiny student.
The attention is there because this world's hardest call is not local: a grass verge and a
facade down to the ground look alike in shape and take scene-drawn colours, so the cue is
which skyline blocks (trees or buildings) share the verge's colour and texture, anywhere in
the frame. It shares the students' input convention (uint8 NHWC frames, normalised inside),
so `pretraining.pretrain` trains it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ams_ray.data.synthetic import NUM_CLASSES
from ams_ray.models.students import StudentNet, load_matching
from ams_ray.models.weights import load_state_dict_bytes

EMBEDDED_TEACHER_WEIGHTS = Path(__file__).parent / "assets" / "teacher.pt"


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.first = _conv_bn_relu(channels, channels, dilation=dilation)
        self.second = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False),
                                    nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.second(self.first(x)))


class _GlobalContext(nn.Module):
    """Pre-norm multi-head self-attention over every cell, added residually. The output
    projection starts at zero, so the block starts as the identity and a network trained
    without it (`train_teacher.py --init`) carries over unchanged."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        cells = self.norm(x.flatten(2).transpose(1, 2))
        mixed, _ = self.attention(cells, cells, cells, need_weights=False)
        return x + mixed.transpose(1, 2).reshape(n, c, h, w)


class TeacherNet(StudentNet):
    """~3.6 M parameters (the tiny student has 0.08 M)."""

    def __init__(self, num_classes: int = NUM_CLASSES, widths: tuple[int, int, int, int] = (32, 64, 128, 192)) -> None:
        super().__init__(num_classes)
        w2, w4, w8, w16 = widths
        self.stride2 = nn.Sequential(_conv_bn_relu(4, w2, 2), _Residual(w2))
        self.stride4 = nn.Sequential(_conv_bn_relu(w2, w4, 2), _Residual(w4))
        self.stride8 = nn.Sequential(_conv_bn_relu(w4, w8, 2), _Residual(w8), _Residual(w8))
        self.stride16 = nn.Sequential(_conv_bn_relu(w8, w16, 2), _Residual(w16, 2), _Residual(w16, 4),
                                      _Residual(w16, 8))
        self.up8 = _conv_bn_relu(w16 + w8, w8)
        self.up4 = _conv_bn_relu(w8 + w4, w4)
        self.up2 = _conv_bn_relu(w4 + w2, w2)
        self.head = nn.Conv2d(w2, num_classes, 1)
        self.context = _GlobalContext(w16)  # made last: the other layers draw the same initial weights as without it

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        s2 = self.stride2(torch.cat([x, rows.expand(n, 1, h, w)], dim=1))
        s4 = self.stride4(s2)
        s8 = self.stride8(s4)
        up = self.context(self.stride16(s8))
        for skip, merge in ((s8, self.up8), (s4, self.up4), (s2, self.up2)):
            up = merge(torch.cat([F.interpolate(up, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                  skip], dim=1))
        return self.head(up)


class NetworkTeacher:
    """The `Teacher` protocol over a `TeacherNet`; fp16 autocast on a GPU."""

    def __init__(self, weights: bytes | None = None, device: str = "cpu", source: str = "") -> None:
        """`weights`: the bytes of a file written like `scripts/train_teacher.py` writes it
        (`source` names it in messages); default the embedded one."""
        if weights is None:
            if not EMBEDDED_TEACHER_WEIGHTS.is_file():
                raise FileNotFoundError(f"embedded teacher weights missing ({EMBEDDED_TEACHER_WEIGHTS}); recreate "
                                        "them with `.venv/bin/python scripts/train_teacher.py`")
            weights, source = EMBEDDED_TEACHER_WEIGHTS.read_bytes(), str(EMBEDDED_TEACHER_WEIGHTS)
        state = {k: v.float() for k, v in load_state_dict_bytes(weights, source).items()}
        self.model = TeacherNet(int(state["head.weight"].shape[0]))
        load_matching(self.model, state, source)
        self.model.eval().to(device)
        self.num_classes, self.device = self.model.num_classes, device

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device.startswith("cuda")):
            logits = self.model(torch.from_numpy(frames).to(self.device))
            return logits.argmax(1).to(torch.uint8).cpu().numpy()
