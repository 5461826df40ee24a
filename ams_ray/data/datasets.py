"""Where a stream's video comes from: a file the user names, or an embedded synthetic video.

Synthetic videos are written once to a cache directory as a real H.264 MP4 plus a label
directory, then read back through the same decoder as any camera file, so the embedded
default exercises the real path end to end.

Between processes a video travels as data, never as a path another node may not have: a
`SyntheticSpec` (rendered, deterministically, where it is played) or a `VideoFile` (the
file's bytes). `SyntheticSpec.key` names a synthetic video in one string, which is all the
oracle teacher needs to regenerate its exact labels from (seed, frame index).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ams_ray.data.label_store import LabelArchive, LabelStore
from ams_ray.data.synthetic import CLASS_NAMES, NUM_CLASSES, SCENE_KINDS, SyntheticVideo, scene_range
from ams_ray.data.video import write_video

SYNTHETIC_FPS = 15.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("AMS_RAY_CACHE", Path.home() / ".cache" / "ams-ray"))


@dataclass(frozen=True)
class SyntheticSpec:
    """One embedded video, as data: rendering it anywhere gives the same frames and labels."""

    seed: int
    duration_s: float
    height: int
    width: int
    scenes: str = "mixed"  # how often the camera's scene changes (`SCENE_KINDS`)

    def __post_init__(self) -> None:
        scene_range(self.scenes)  # refuses an unknown kind here, not where the video is rendered

    @property
    def key(self) -> str:
        base = f"synthetic:{self.seed}:{self.duration_s:g}:{self.height}x{self.width}"
        return base if self.scenes == "mixed" else f"{base}:{self.scenes}"

    @classmethod
    def from_key(cls, key: str | None) -> "SyntheticSpec | None":
        """The spec a `key` names, or None for anything that is not a synthetic key."""
        parts = (key or "").split(":")
        if len(parts) not in (4, 5) or parts[0] != "synthetic" or "x" not in parts[3]:
            return None
        height, width = parts[3].split("x")
        scenes = parts[4] if len(parts) == 5 else "mixed"
        return cls(int(parts[1]), float(parts[2]), int(height), int(width), scenes) if scenes in SCENE_KINDS else None

    def video(self) -> SyntheticVideo:
        return SyntheticVideo(self.seed, duration_s=self.duration_s, fps=SYNTHETIC_FPS, height=self.height,
                              width=self.width, scene_range_s=scene_range(self.scenes))

    def materialize(self, cache_dir: Path | None = None, progress: bool = False,
                    labels: bool = True) -> "VideoSource":
        return materialize_synthetic(self.seed, self.duration_s, self.height, self.width, cache_dir, progress, labels,
                                     self.scenes)


@dataclass(frozen=True)
class VideoFile:
    """A camera file shipped by value to wherever its stream plays (its name is for messages),
    with the truth labels to score it by, when there are any."""

    name: str
    data: bytes
    truth: LabelArchive | None = None

    @classmethod
    def read(cls, path: str | Path, truth: str | Path | None = None) -> "VideoFile":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"video file not found: {path}")
        return cls(path.name, path.read_bytes(), LabelArchive.read_directory(truth) if truth else None)


def read_videos(paths: list[Path], truth: list[Path] | None = None) -> list[VideoFile]:
    """The real videos of a fleet, each with its truth label directory when `truth` is given."""
    if truth is not None and len(truth) != len(paths):
        raise ValueError(f"{len(truth)} truth label directories for {len(paths)} videos: give one per video, in order")
    return [VideoFile.read(p, t) for p, t in zip(paths, truth or [None] * len(paths))]


@dataclass(frozen=True)
class VideoSource:
    path: Path
    name: str
    synthetic: SyntheticSpec | None = None

    @property
    def label_key(self) -> str | None:
        """What the oracle teacher needs to label this video: its synthetic key, if it has one."""
        return self.synthetic.key if self.synthetic else None


def materialize_synthetic(
    seed: int, duration_s: float, height: int, width: int, cache_dir: Path | None = None, progress: bool = True,
    labels: bool = True, scenes: str = "mixed",
) -> VideoSource:
    """Write (or reuse) `seed`'s video as DIR/video.mp4 with exact labels in DIR/labels/.

    `labels=False` writes the video alone: an edge re-renders its labels from the seed when
    it scores (`SyntheticOracle`), and PNG-encoding every frame's labels would add about a
    third to the cold start of a fleet whose edges render their own videos."""
    spec = SyntheticSpec(seed, duration_s, height, width, scenes)
    kind = "" if scenes == "mixed" else f"-{scenes}"
    root = (cache_dir or default_cache_dir()) / f"synthetic-s{seed}-{duration_s:g}s-{height}x{width}{kind}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # many streams may ask for the same video at once
        return _materialize_locked(root, spec, progress, labels)


def _materialize_locked(root: Path, spec: SyntheticSpec, progress: bool, labels: bool) -> VideoSource:
    seed = spec.seed
    video_path = root / "video.mp4"
    if video_path.is_file() and (not labels or (root / "labels" / "meta.json").is_file()):
        return VideoSource(video_path, f"synthetic:{seed}", spec)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    video = spec.video()
    writer = LabelStore.create(tmp / "labels", NUM_CLASSES, CLASS_NAMES) if labels else None

    def frames():
        for frame, label_map in tqdm(video.frames(), total=video.num_frames,
                                     desc=f"writing synthetic video {seed}", unit="frame", disable=not progress,
                                     leave=False):
            if writer:
                writer.write(label_map)
            yield frame

    write_video(tmp / "video.mp4", frames(), video.fps)
    if writer:
        writer.close()
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)  # atomic: a crash never leaves a half-written cache entry in place
    return VideoSource(video_path, f"synthetic:{seed}", spec)


def resolve_video(spec: str, seed: int, duration_s: float, height: int, width: int,
                  cache_dir: Path | None = None) -> VideoSource:
    """`synthetic` (with `seed`) or a path to a video file."""
    if spec == "synthetic":
        return materialize_synthetic(seed, duration_s, height, width, cache_dir)
    path = Path(spec)
    return VideoSource(path, path.name)
