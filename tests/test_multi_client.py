import re
from pathlib import Path

import numpy as np

from ams_ray.data.synthetic import SyntheticVideo
from ams_ray.teach.teachers import build_teacher, checked_labels
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
    """The same frame index with other pixels gets other labels: the default teacher runs a model
    on what devices upload, unlike the oracle, which would make the benchmark's teacher free."""
    args = parse_args([])
    teacher = build_teacher(args.teacher)
    frame = SyntheticVideo(3, duration_s=10.0, fps=10.0, height=128, width=256).frame(0)
    first, inverted = (checked_labels(teacher, f[None], [0])[0] for f in (frame, 255 - frame))
    assert not np.array_equal(first, inverted)


def test_a_run_in_which_no_stream_got_an_update_exits_non_zero_and_says_why(ray_local, cache_dir, tmp_path,
                                                                            capsys):
    """A teacher whose model always fails: the streams play to the end and complete, and the
    run fails anyway, naming the cause."""
    from benchmarks.multi_client import main

    code = main(["--clients", "2", "--duration", "20", "--speed", "2", "--teacher", "tests.teacher_plugins:broken",
                 "--address", "auto", "--cache-dir", str(cache_dir), "--checkpoint-store", str(tmp_path / "store"),
                 "--metrics-flush-s", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3
    assert re.search(r"FAILED: no stream applied an update \(2 completed\): no training round ran: the teacher "
                     r"labelled no training frame \([1-9]\d* chunks unlabelled, 0 shed\)", err)
    assert "OVERLOAD 2 of 2 streams applied no update: stream-000, stream-001" in err
