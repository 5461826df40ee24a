"""Video in and out through PyAV: reading camera files, and H.264 sample chunks for the uplink.

The same `VideoReader` reads the embedded synthetic videos and users' real files, so the
benchmark exercises the decoder, the scaler and the codec artefacts a real deployment has.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np


class VideoError(ValueError):
    """A video that cannot be used; the message says which file and what to do."""


class FrameSizeError(VideoError):
    """A chunk's frames are not the size its receiver runs at."""


class VideoReader:
    """Decodes a video to RGB frames at the size the models expect.

    The video is a file on this machine, or its bytes (`data`, named `path` in messages):
    bytes are how a camera file reaches a process on another node."""

    def __init__(self, path: str | Path, height: int | None = None, width: int | None = None,
                 data: bytes | None = None) -> None:
        """Frames come out at height x width, or at the video's own size when both are None."""
        self.path = Path(path)
        self.data = data
        if data is None and not self.path.is_file():
            raise VideoError(f"video file not found: {self.path}; pass an existing file or --video synthetic")
        try:
            with self._open() as container:
                if not container.streams.video:
                    raise VideoError(f"{self.path} has no video stream; pass a video file (H.264 MP4, AVI, ...)")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else 30.0
                self.num_frames_hint = stream.frames or None
                self.native_size: tuple[int, int] = (stream.codec_context.height, stream.codec_context.width)
                self.height, self.width = (height, width) if height and width else self.native_size
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"cannot open {self.path} as a video ({exc}); the file is corrupt, truncated or not a "
                "video: re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`"
            ) from exc

    def _open(self):
        return av.open(io.BytesIO(self.data) if self.data is not None else str(self.path))

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        try:
            with self._open() as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    count += 1
                    yield frame.to_ndarray(width=self.width, height=self.height, format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"decoding {self.path} failed after {count} frames ({exc}); the file is corrupt or "
                "truncated: re-encode or re-download it"
            ) from exc
        if count == 0:
            raise VideoError(f"{self.path} contains no decodable frames; pass a video with at least one frame")

    def read_all(self, max_frames: int | None = None) -> np.ndarray:
        frames = []
        for frame in self:
            frames.append(frame)
            if max_frames is not None and len(frames) >= max_frames:
                break
        return np.stack(frames)


def fit_within(size: tuple[int, int], bound: tuple[int, int]) -> tuple[int, int]:
    """The largest (height, width) inside `bound` with the aspect ratio of `size`."""
    scale = min(bound[0] / size[0], bound[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
        raise ValueError(f"a size is HEIGHTxWIDTH in pixels, e.g. 512x1024; got {text!r}")
    return int(height), int(width)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 18) -> int:
    """Write RGB frames as H.264 MP4 (yuv420p, libx264); returns the number of frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            if count == 0:
                stream.height, stream.width = frame.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        container.mux(stream.encode())
    if count == 0:
        path.unlink(missing_ok=True)
        raise VideoError(f"no frames given for {path}")
    return count


def encode_chunk(frames: np.ndarray, crf: int = 23) -> bytes:
    """Compress sampled frames (N, H, W, 3) as one raw H.264 (Annex B) bitstream.

    Raw H.264 rather than MP4: the chunk's envelope already carries frame ids and times,
    so a container would only add bytes to the uplink.
    """
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"encode_chunk needs frames shaped (N, H, W, 3) with N >= 1, got {frames.shape}")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_chunk(data: bytes, expected_frames: int | None = None,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a chunk from `encode_chunk`; checks the frame count so a lost frame is noticed.

    Bounded as it decodes, for bytes that came off a network: with `expected_frames` it stops
    at the first frame past that count, and with `size` (height, width) at the first frame of
    another size (`FrameSizeError`), so a crafted bitstream cannot make it hold more.
    """
    frames: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r", format="h264") as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                if size is not None and (frame.height, frame.width) != size:
                    raise FrameSizeError(f"frames are {frame.height}x{frame.width}, expected {size[0]}x{size[1]}")
                frames.append(frame.to_ndarray(format="rgb24"))
                if expected_frames is not None and len(frames) > expected_frames:
                    break
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot decode uplink chunk of {len(data)} bytes: {exc}") from exc
    if not frames:
        raise VideoError(f"uplink chunk of {len(data)} bytes holds no frames")
    if expected_frames is not None and len(frames) != expected_frames:
        held = f"more than {expected_frames}" if len(frames) > expected_frames else str(len(frames))
        raise VideoError(f"uplink chunk holds {held} frames, its envelope says {expected_frames}")
    return np.stack(frames)
