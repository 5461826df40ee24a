"""Label every frame of a video once with a teacher: what `extract-labels` runs.

The teacher sees each frame at the video's own size unless told otherwise: AMS's teacher
sees more pixels than its student, and a model run at the student's 128x256 finds far fewer
small objects than at full size. `label_size` is a bound, not a shape: the frame is scaled to
fit inside it with its aspect ratio kept, never padded or cropped, so every label pixel
covers the same part of the scene as the frame pixel under it, and consumers that squash the
frame to the student's shape squash the labels the same way (`teachers.CachedLabelTeacher`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ams_ray.data.label_lookup import Teacher
from ams_ray.data.label_store import LabelStore, LabelWriter
from ams_ray.data.video import VideoReader, fit_within
from ams_ray.teach.teachers import build_teacher, checked_labels

BATCH = 8  # frames per teacher call: a model labels a batch in one forward pass


def labelling_size(video_size: tuple[int, int], bound: tuple[int, int] | None) -> tuple[int, int]:
    """Where the teacher labels: the video's own size, or the largest fit inside `bound`."""
    return video_size if bound is None else fit_within(video_size, bound)


def extract_labels(video: Path, teacher_spec: str, out: Path, bound: tuple[int, int] | None = None,
                   progress: bool = True) -> LabelStore:
    video_size = VideoReader(video).native_size
    height, width = labelling_size(video_size, bound)
    reader = VideoReader(video, height, width)
    teacher = build_teacher(teacher_spec)  # labels the pixels (or reads labels:DIR) of a real file
    writer = LabelStore.create(out, teacher.num_classes, provenance={
        "label_size": [height, width], "video_size": list(video_size), "video": video.name, "teacher": teacher_spec})
    batch: list = []
    for frame in tqdm(reader, total=reader.num_frames_hint, unit="frame", desc=f"labelling at {height}x{width}",
                      disable=not progress):
        batch.append(frame)
        if len(batch) == BATCH:
            _label_batch(teacher, batch, writer)
    if batch:
        _label_batch(teacher, batch, writer)
    return writer.close()


def _label_batch(teacher: Teacher, batch: list[np.ndarray], writer: LabelWriter) -> None:
    indices = list(range(writer.count, writer.count + len(batch)))
    for labels in checked_labels(teacher, np.stack(batch), indices):
        writer.write(labels)
    batch.clear()
