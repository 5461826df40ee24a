import numpy as np
import pytest

from ams_ray.data.datasets import materialize_synthetic, resolve_video
from ams_ray.data.label_store import LabelStore
from ams_ray.data.video import VideoReader


def test_synthetic_video_is_written_once_as_h264_with_labels(short_video, cache_dir):
    reader = VideoReader(short_video.path, 64, 128)
    assert reader.fps == 15 and reader.num_frames_hint == 600
    assert LabelStore(short_video.path.parent / "labels").num_frames == 600
    mtime = short_video.path.stat().st_mtime_ns
    again = materialize_synthetic(7, 40.0, 64, 128, cache_dir=cache_dir, progress=False)
    assert again == short_video and again.path.stat().st_mtime_ns == mtime
    assert not list(cache_dir.glob("*.tmp*")), "no half-written entries are left behind"


def test_a_path_is_taken_as_a_camera_file(tmp_path):
    source = resolve_video(str(tmp_path / "cam.mp4"), seed=0, duration_s=1, height=8, width=8)
    assert source.synthetic is None and source.label_key is None and source.name == "cam.mp4"


def test_a_synthetic_spec_travels_as_one_key():
    from ams_ray.data.datasets import SyntheticSpec

    spec = SyntheticSpec(12, 60.0, 128, 256)
    assert SyntheticSpec.from_key(spec.key) == spec
    assert SyntheticSpec.from_key("/data/cam.mp4") is None and SyntheticSpec.from_key(None) is None
    assert np.array_equal(spec.video().labels(30), SyntheticSpec.from_key(spec.key).video().labels(30))


def test_a_video_without_labels_is_completed_with_them_when_asked(tmp_path):
    from ams_ray.data.datasets import SyntheticSpec

    spec = SyntheticSpec(31, 2.0, 32, 64)
    bare = spec.materialize(tmp_path, labels=False)
    assert bare.path.is_file() and not (bare.path.parent / "labels").exists()
    full = spec.materialize(tmp_path)
    assert full.path == bare.path and (full.path.parent / "labels" / "meta.json").is_file()


def test_real_videos_carry_their_truth_as_bytes(short_video, tmp_path):
    import shutil

    import numpy as np

    from ams_ray.data.datasets import read_videos
    from ams_ray.data.label_store import LabelStore

    labels = tmp_path / "truth"
    shutil.copytree(short_video.path.parent / "labels", labels)
    (video,) = read_videos([short_video.path], [labels])
    expected = LabelStore(labels).read(17)
    shutil.rmtree(labels)
    assert video.truth.num_frames == 600 and np.array_equal(video.truth.read(17), expected)
    with pytest.raises(ValueError, match="1 truth label directories for 2 videos"):
        read_videos([short_video.path, short_video.path], [labels])
