"""Pretrain a student on labelled frames: `pretrain-student` and the embedded tiny student.

AMS adapts a student that is already decent on the kind of scene it will see; a student for
a new class set (a teacher of your own) has to be made first, from a few labelled clips. The
held-out frames are the *last* part of each clip, not a random sample: neighbouring frames of
one video are near-copies, so a random split would score the student on frames it has
practically trained on.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ams_ray.accuracy import batch_miou
from ams_ray.data.label_store import LabelStore, resize_labels
from ams_ray.data.synthetic import SyntheticVideo
from ams_ray.data.video import VideoReader, decode_chunk, encode_chunk


@dataclass(frozen=True)
class PretrainSettings:
    iterations: int = 1500
    batch_size: int = 16
    learning_rate: float = 3e-3  # the peak of a one-cycle schedule
    weight_decay: float = 1e-4
    augment: bool = True  # random zoom and colour jitter; horizontal flips always
    seed: int = 0


@dataclass(frozen=True)
class LabelledFrames:
    frames: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, H, W) class ids

    def __len__(self) -> int:
        return len(self.frames)

    @staticmethod
    def concat(parts: list["LabelledFrames"]) -> "LabelledFrames":
        return LabelledFrames(np.concatenate([p.frames for p in parts]), np.concatenate([p.labels for p in parts]))

    def head(self, count: int) -> "LabelledFrames":
        return LabelledFrames(self.frames[:count], self.labels[:count])

    def split(self, heldout_fraction: float) -> tuple["LabelledFrames", "LabelledFrames"]:
        """(training, held-out): the held-out part is the last `heldout_fraction` in time."""
        cut = len(self) - max(1, round(len(self) * heldout_fraction))
        if cut < 1:
            raise ValueError(f"{len(self)} labelled frames are too few to hold some out; label a longer clip")
        return (LabelledFrames(self.frames[:cut], self.labels[:cut]),
                LabelledFrames(self.frames[cut:], self.labels[cut:]))


def read_labelled_video(video: Path, labels: Path, height: int, width: int, max_frames: int) -> LabelledFrames:
    """Up to `max_frames` evenly spaced frames of `video` at height x width, with their labels
    from the label directory (resized the way `CachedLabelTeacher` resizes them)."""
    store = LabelStore(labels)
    reader = VideoReader(video, height, width)
    available = store.num_frames if reader.num_frames_hint is None else min(store.num_frames, reader.num_frames_hint)
    picks = set(np.linspace(0, available - 1, min(max_frames, available)).round().astype(int).tolist())
    frames, maps = [], []
    for index, frame in enumerate(reader):
        if index >= available:
            break
        if index in picks:
            frames.append(frame)
            maps.append(resize_labels(store.read(index), height, width))
    if not frames:
        raise ValueError(f"no frame of {video} has a label in {labels}")
    return LabelledFrames(np.stack(frames), np.stack(maps))


def _synthetic_video_frames(seed: int, per_video: int) -> tuple[np.ndarray, np.ndarray]:
    video = SyntheticVideo(seed, duration_s=300.0)
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(video.num_frames, size=per_video, replace=False))
    rendered = [video.render(int(i)) for i in picks]
    chunk = np.stack([f for f, _ in rendered])
    return decode_chunk(encode_chunk(chunk), per_video), np.stack([l for _, l in rendered])


def synthetic_frames(seed_base: int, videos: int, per_video: int, desc: str, workers: int = 1) -> LabelledFrames:
    """`per_video` frames at random times of synthetic videos `seed_base`..`seed_base + videos - 1`,
    through the H.264 chunk codec as every frame the server sees arrives, with exact labels.
    Each video is a function of its seed alone, so `workers` processes give the same frames."""
    seeds = range(seed_base, seed_base + videos)
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        made = (pool.map(_synthetic_video_frames, seeds, repeat(per_video), chunksize=16) if pool
                else map(_synthetic_video_frames, seeds, repeat(per_video)))
        parts = list(tqdm(made, total=videos, desc=desc, unit="video"))
    return LabelledFrames(np.concatenate([f for f, _ in parts]), np.concatenate([l for _, l in parts]))


def augment(frames: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
            full: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A horizontal flip half the time; with `full`, also a random zoom (up to 1.5x, into a
    random part of the frame) and brightness/contrast jitter (+-20 %), which teach a student
    from a few clips to tolerate the framing and lighting of the next camera."""
    if rng.random() < 0.5:
        frames, labels = frames.flip(2), labels.flip(2)
    if not full:
        return frames, labels
    h, w = labels.shape[1:]
    zoom = rng.uniform(1.0, 1.5)
    ch, cw = int(h / zoom), int(w / zoom)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    x = frames[:, top:top + ch, left:left + cw].permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    y = F.interpolate(labels[:, None, top:top + ch, left:left + cw].float(), size=(h, w), mode="nearest-exact")[:, 0]
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-0.2, 0.2) * 255
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 255)
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(), y.long()


def pretrain(model: torch.nn.Module, data: LabelledFrames, settings: PretrainSettings,
             on_step: Callable[[int, float], None] | None = None, device: str = "cpu") -> None:
    """AdamW under a one-cycle schedule on random batches of `data`; `on_step(step, loss)`.
    On a GPU each batch is augmented there, under bf16 autocast; the model stays on `device`."""
    if len(data) < settings.batch_size:
        raise ValueError(f"{len(data)} training frames for batches of {settings.batch_size}: label more frames "
                         "or lower --batch-size")
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=settings.iterations)
    rng = np.random.default_rng(settings.seed)
    on_gpu = device.startswith("cuda")
    model.to(device).train()
    for step in range(settings.iterations):
        idx = rng.choice(len(data), size=settings.batch_size, replace=False)
        x, y = augment(torch.from_numpy(data.frames[idx]).to(device), torch.from_numpy(data.labels[idx]).to(device).long(),
                       rng, settings.augment)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
            loss = F.cross_entropy(model(x).float(), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if on_step:
            on_step(step, loss.item())
    model.eval()


def predict(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    """The model's label maps for `frames`, in batches of 32, in fp32 wherever the model is."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(frames[i:i + 32]).to(device)).argmax(1).cpu().numpy()
                               for i in range(0, len(frames), 32)])


def evaluate(model: torch.nn.Module, data: LabelledFrames, num_classes: int) -> float:
    """Mean per-frame mIoU (%) of the model's labels against `data`'s."""
    return float(np.mean(batch_miou(data.labels, predict(model, data.frames), num_classes)))


def progress_bar(iterations: int) -> Callable[[int, float], None]:
    """An `on_step` that shows a bar with the recent loss."""
    bar = tqdm(total=iterations, desc="pretraining", unit="step")

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if step == iterations - 1:
            bar.close()

    return on_step
