import numpy as np

from ams_ray.data.synthetic import CLASS_NAMES, NUM_CLASSES, SyntheticVideo


def test_same_seed_same_video_other_seed_other_video():
    a, b, c = SyntheticVideo(3, duration_s=60), SyntheticVideo(3, duration_s=60), SyntheticVideo(4, duration_s=60)
    assert np.array_equal(a.frame(123), b.frame(123))
    assert np.array_equal(a.labels(123), b.labels(123))
    assert not np.array_equal(a.frame(123), c.frame(123))


def test_street_classes_all_appear_with_exact_labels():
    video = SyntheticVideo(11, duration_s=300)
    seen = np.zeros(NUM_CLASSES, dtype=bool)
    for index in range(0, video.num_frames, 150):
        labels = video.labels(index)
        assert labels.dtype == np.uint8 and labels.shape == (video.height, video.width)
        seen[np.unique(labels)] = True
    assert len(CLASS_NAMES) >= 6 and seen.all()


def test_scenes_last_30_to_120_seconds():
    video = SyntheticVideo(5, duration_s=900)
    starts = video.scene_starts_s
    lengths = np.diff(starts)
    assert len(starts) >= 8
    assert lengths.min() >= 30 and lengths.max() <= 120


def test_appearance_changes_at_cuts_and_drifts_within_a_scene():
    video = SyntheticVideo(2, duration_s=300)
    cut = video.scene_starts_s[1]
    before, after = int((cut - 1) * video.fps), int((cut + 1) * video.fps)
    mean_colour = lambda i, cls: video.frame(i)[video.labels(i) == cls].mean(0)  # noqa: E731
    sky_jump = np.abs(mean_colour(before, 4) - mean_colour(after, 4)).sum()
    start = int(video.scene_starts_s[0] * video.fps) + 1
    drift = np.abs(mean_colour(start, 4) - mean_colour(before, 4)).sum()
    same_second = np.abs(mean_colour(start, 4) - mean_colour(start + 1, 4)).sum()
    assert sky_jump > 20, "a cut re-draws the palette"
    assert drift > same_second, "colours drift gradually within a scene"


def test_frames_outside_the_video_are_refused():
    video = SyntheticVideo(1, duration_s=10, fps=10)
    try:
        video.frame(100)
    except IndexError as exc:
        assert "outside video of 100 frames" in str(exc)
    else:
        raise AssertionError("frame 100 of a 100-frame video must fail")
