import json

import numpy as np
import pytest

from ams_ray.data.label_store import LabelStore
from ams_ray.data.synthetic import SyntheticVideo
from ams_ray.data.video import VideoReader, write_video
from ams_ray.teach.label_extraction import extract_labels, labelling_size
from ams_ray.teach.teachers import build_teacher


@pytest.fixture(scope="module")
def four_by_three(tmp_path_factory):
    """A 4:3 camera-like video (96x128), not the student's 2:1."""
    video = SyntheticVideo(11, duration_s=2.0, fps=15.0, height=96, width=128)
    path = tmp_path_factory.mktemp("video") / "camera.mp4"
    write_video(path, (frame for frame, _ in video.frames()), video.fps)
    return path


def test_the_label_size_is_a_bound_that_keeps_the_aspect_ratio():
    assert labelling_size((576, 768), None) == (576, 768)
    assert labelling_size((576, 768), (128, 256)) == (128, 171)
    assert labelling_size((576, 768), (512, 512)) == (384, 512)
    assert labelling_size((720, 1280), (256, 512)) == (256, 455)


def test_labels_are_made_from_the_pixels_at_the_bounded_size_and_recorded(four_by_three, tmp_path):
    store = extract_labels(four_by_three, "tests.teacher_plugins:colour", tmp_path / "labels", (48, 256),
                           progress=False)
    assert store.label_size == (48, 64) and store.num_frames == 30 and store.num_classes == 7
    meta = json.loads((tmp_path / "labels" / "meta.json").read_text())
    assert meta["video_size"] == [96, 128] and meta["video"] == "camera.mp4"
    assert meta["teacher"] == "tests.teacher_plugins:colour"
    frames = VideoReader(four_by_three, 48, 64).read_all(max_frames=10)
    expected = build_teacher("tests.teacher_plugins:colour").label(frames, list(range(10)))
    assert all(np.array_equal(store.read(i), expected[i]) for i in range(10))


def test_by_default_the_teacher_sees_the_video_at_its_own_size(four_by_three, tmp_path):
    store = extract_labels(four_by_three, "tests.teacher_plugins:colour", tmp_path / "labels", progress=False)
    assert store.label_size == (96, 128) and store.read(0).shape == (96, 128)
    assert LabelStore(tmp_path / "labels").label_size == (96, 128)
