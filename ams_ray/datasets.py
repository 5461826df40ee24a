"""Where a stream's video comes from: a file the user names, or an embedded synthetic video.

Synthetic videos are written once to a cache directory as a real H.264 MP4 plus a label
directory, then read back through the same decoder as any camera file, so the embedded
default exercises the real path end to end.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ams_ray.label_store import LabelStore
from ams_ray.synthetic import CLASS_NAMES, NUM_CLASSES, SyntheticVideo
from ams_ray.video import write_video

SYNTHETIC_FPS = 15.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("AMS_RAY_CACHE", Path.home() / ".cache" / "ams-ray"))


@dataclass(frozen=True)
class VideoSource:
    path: Path
    name: str
    synthetic_seed: int | None = None


def materialize_synthetic(
    seed: int, duration_s: float, height: int, width: int, cache_dir: Path | None = None, progress: bool = True
) -> VideoSource:
    """Write (or reuse) `seed`'s video as DIR/video.mp4 with exact labels in DIR/labels/."""
    root = (cache_dir or default_cache_dir()) / f"synthetic-s{seed}-{duration_s:g}s-{height}x{width}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # many streams may ask for the same video at once
        return _materialize_locked(root, seed, duration_s, height, width, progress)


def _materialize_locked(root: Path, seed: int, duration_s: float, height: int, width: int,
                        progress: bool) -> VideoSource:
    video_path = root / "video.mp4"
    if video_path.is_file() and (root / "labels" / "meta.json").is_file():
        return VideoSource(video_path, f"synthetic:{seed}", seed)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    video = SyntheticVideo(seed, duration_s=duration_s, fps=SYNTHETIC_FPS, height=height, width=width)
    writer = LabelStore.create(tmp / "labels", NUM_CLASSES, CLASS_NAMES)

    def frames():
        for frame, labels in tqdm(video.frames(), total=video.num_frames, desc=f"writing synthetic video {seed}",
                                  unit="frame", disable=not progress, leave=False):
            writer.write(labels)
            yield frame

    write_video(tmp / "video.mp4", frames(), video.fps)
    writer.close()
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)  # atomic: a crash never leaves a half-written cache entry in place
    return VideoSource(video_path, f"synthetic:{seed}", seed)


def resolve_video(spec: str, seed: int, duration_s: float, height: int, width: int,
                  cache_dir: Path | None = None) -> VideoSource:
    """`synthetic` (with `seed`) or a path to a video file."""
    if spec == "synthetic":
        return materialize_synthetic(seed, duration_s, height, width, cache_dir)
    path = Path(spec)
    return VideoSource(path, path.name)
