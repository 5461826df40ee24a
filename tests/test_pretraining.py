import numpy as np
import pytest
import torch

from ams_ray.data.label_store import LabelStore
from ams_ray.data.synthetic import CLASS_NAMES, SyntheticVideo
from ams_ray.data.video import write_video
from ams_ray.evaluation.pretraining import (
    LabelledFrames,
    PretrainSettings,
    augment,
    evaluate,
    pretrain,
    read_labelled_video,
)
from ams_ray.models.students import build_student

ROAD = CLASS_NAMES.index("road")


def write_two_class_clip(root, seed: int, seconds: float = 12.0):
    """A synthetic clip with labels for a class set of its own: 1 = road, 0 = anything else."""
    video = SyntheticVideo(seed, duration_s=seconds, fps=15.0, height=64, width=128)
    writer = LabelStore.create(root / f"labels{seed}", num_classes=2, class_names=["other", "road"])

    def frames():
        for frame, labels in video.frames():
            writer.write((labels == ROAD).astype(np.uint8))
            yield frame

    write_video(root / f"clip{seed}.mp4", frames(), video.fps)
    writer.close()
    return root / f"clip{seed}.mp4", root / f"labels{seed}"


def test_the_held_out_part_is_the_end_of_the_clip():
    data = LabelledFrames(np.arange(10)[:, None, None, None].repeat(3, -1).astype(np.uint8),
                          np.arange(10)[:, None, None].astype(np.uint8))
    train, heldout = data.split(0.2)
    assert train.labels[:, 0, 0].tolist() == list(range(8)) and heldout.labels[:, 0, 0].tolist() == [8, 9]
    with pytest.raises(ValueError, match="too few"):
        LabelledFrames(data.frames[:1], data.labels[:1]).split(0.2)


def test_augmentation_moves_labels_with_their_pixels():
    """Labels are painted into the green channel (255 = class 1), so after any zoom, flip and
    colour jitter the labels must still be where the green is."""
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 2, (4, 8, 16)).repeat(4, 1).repeat(4, 2))
    frames = torch.zeros(4, 32, 64, 3, dtype=torch.uint8)
    frames[..., 1] = labels.to(torch.uint8) * 255
    frames[..., 0] = 100
    for seed in range(5):
        x, y = augment(frames, labels, np.random.default_rng(seed), full=True)
        assert x.shape == frames.shape and x.dtype == torch.uint8 and y.shape == labels.shape
        agreement = ((x[..., 1] > 127) == (y == 1)).float().mean().item()
        assert agreement > 0.95


def test_pretraining_beats_the_untrained_student_on_held_out_frames(tmp_path):
    clips = [read_labelled_video(*write_two_class_clip(tmp_path, seed), 64, 128, max_frames=90)
             for seed in (100_001, 100_002)]
    assert clips[0].frames.shape == (90, 64, 128, 3) and set(np.unique(clips[0].labels)) <= {0, 1}
    parts = [clip.split(0.25) for clip in clips]
    train, heldout = LabelledFrames.concat([p[0] for p in parts]), LabelledFrames.concat([p[1] for p in parts])
    torch.manual_seed(0)
    model = build_student("tiny:scratch", 2)
    before = evaluate(model, heldout, 2)
    pretrain(model, train, PretrainSettings(iterations=60, batch_size=8, learning_rate=1e-2))
    after = evaluate(model, heldout, 2)
    assert after > before + 10, (before, after)


def test_synthetic_frames_are_the_same_from_worker_processes():
    """Each scene depends on its seed alone, so rendering in parallel changes nothing."""
    from ams_ray.evaluation.pretraining import synthetic_frames

    alone = synthetic_frames(600_000, 3, 2, "scenes")
    parallel = synthetic_frames(600_000, 3, 2, "scenes", workers=2)
    assert alone.frames.shape == (6, 128, 256, 3)
    assert np.array_equal(alone.frames, parallel.frames) and np.array_equal(alone.labels, parallel.labels)
