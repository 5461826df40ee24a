import numpy as np
import pytest

from ams_ray.data.synthetic import SyntheticVideo
from ams_ray.data.video import VideoError, VideoReader, decode_chunk, encode_chunk, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    video = SyntheticVideo(9, duration_s=4, fps=10, height=64, width=128)
    frames = np.stack([video.frame(i) for i in range(video.num_frames)])
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames, fps=10)
    return path, frames


def test_h264_file_round_trip_is_close(clip):
    path, frames = clip
    reader = VideoReader(path, 64, 128)
    decoded = reader.read_all()
    assert reader.fps == pytest.approx(10)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_reader_scales_to_the_model_size(clip):
    path, _ = clip
    assert VideoReader(path, 32, 48).read_all(max_frames=2).shape == (2, 32, 48, 3)


def test_chunk_round_trip_and_frame_count_check(clip):
    _, frames = clip
    data = encode_chunk(frames[:5])
    assert len(data) < frames[:5].nbytes / 10
    decoded = decode_chunk(data, expected_frames=5)
    assert decoded.shape == frames[:5].shape
    with pytest.raises(VideoError, match="envelope says 6"):
        decode_chunk(data, expected_frames=6)


def test_missing_video(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path / "nope.mp4", 64, 128)


def test_corrupt_video(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(VideoError, match="corrupt"):
        VideoReader(path, 64, 128)


def test_truncated_video(clip, tmp_path):
    path, _ = clip
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoError, match="corrupt|truncated"):
        VideoReader(truncated, 64, 128).read_all()


def test_video_without_frames(tmp_path):
    with pytest.raises(VideoError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=10)
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoError):
        VideoReader(path, 64, 128)
