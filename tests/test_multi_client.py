from pathlib import Path

from benchmarks.multi_client import parse_args


def test_videos_may_be_a_glob_with_one_truth_directory_each(tmp_path):
    for name in ("b.mp4", "a.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    args = parse_args(["--videos", str(tmp_path / "*.mp4"), "--truth", f"labels:{tmp_path}/la", f"{tmp_path}/lb"])
    assert args.videos == [tmp_path / "a.mp4", tmp_path / "b.mp4"] and args.clients == 2
    assert args.truth == [tmp_path / "la", tmp_path / "lb"]
    missing = parse_args(["--videos", str(tmp_path / "none-*.mp4")])
    assert missing.videos == [Path(tmp_path / "none-*.mp4")], "kept, so the run names what is missing"


def test_the_default_teacher_labels_pixels():
    args = parse_args([])
    assert args.teacher == "network" and args.teacher_max_replicas is None
