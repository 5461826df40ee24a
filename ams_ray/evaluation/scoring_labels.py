"""The teacher's labels of the frames a comparison scores, made once for all its strategies.

Every strategy of `compare` scores the same frames (every `eval_every`-th) against the
teacher's labels. With a model teacher, labelling them in each strategy's worker would run
the teacher over the same frames once per strategy; so the parent labels them once and
ships them to the workers as PNG bytes (`LabelArchive`), never as a path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ams_ray.config import AmsConfig
from ams_ray.data.datasets import VideoSource
from ams_ray.data.label_store import LabelArchive
from ams_ray.data.video import VideoReader
from ams_ray.teach.teacher_spec import TeacherSpec
from ams_ray.teach.teachers import build_teacher, checked_labels


@dataclass(frozen=True)
class ScoringLabels:
    every: int
    archive: LabelArchive

    def labels(self, index: int) -> np.ndarray:
        if index % self.every:
            raise ValueError(f"frame {index} is not scored: only every {self.every}th frame is")
        return self.archive.read(index // self.every)


def label_scored_frames(source: VideoSource, teacher_spec: str | TeacherSpec, config: AmsConfig,
                        max_duration_s: float | None) -> ScoringLabels:
    """Run the teacher once over the frames a simulation will score, a frame at a time as the
    simulation would (on one CPU core the teacher network labels 43 frames/s alone and 41 in
    batches of 8, so batching would not pay: `teacher_serve_vs_local.py`)."""
    teacher = build_teacher(teacher_spec, source.label_key)
    reader = VideoReader(source.path, config.video.height, config.video.width)
    last = int(max_duration_s * reader.fps) if max_duration_s else None
    labels: list[np.ndarray] = []
    for index, frame in enumerate(tqdm(reader, desc=f"teacher labels of the scored frames of {source.name}",
                                       unit="frame", leave=False)):
        if last is not None and index >= last:
            break
        if index % config.eval_every == 0:
            labels.append(checked_labels(teacher, frame[None], [index])[0])
    return ScoringLabels(config.eval_every, LabelArchive.from_labels(source.name, teacher.num_classes, labels))
