import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_pretraining import write_two_class_clip


def _run(args, tmp_path, check=False, **env):
    env = {**os.environ, "AMS_RAY_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([sys.executable, "-m", "ams_ray", *args], capture_output=True, text=True, env=env,
                          check=check, timeout=600)


def _error_lines(proc) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_compare_writes_results_and_plot(tmp_path):
    out = tmp_path / "out"
    proc = _run(["compare", "--video", "synthetic", "--seed", "3", "--duration", "30", "--eval-every", "15",
                 "--strategies", "pretrained,one_time,ams_gg10", "--one-time-window", "12", "--out", str(out)],
                tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["video"] == "synthetic:3"
    rows = {r["strategy"]: r for r in doc["rows"]}
    assert list(rows) == ["pretrained", "one_time", "ams_gg10"]
    assert rows["pretrained"]["uplink_kbps"] == rows["pretrained"]["downlink_kbps"] == 0.0
    assert rows["ams_gg10"]["uplink_kbps"] > 0 and rows["ams_gg10"]["miou"] != rows["pretrained"]["miou"]
    assert rows["one_time"]["updates_sent"] == rows["one_time"]["updates_applied"] == 1
    assert rows["ams_gg10"]["downlink_kbps"] > 0
    assert (out / "miou_over_time.png").stat().st_size > 10_000
    assert "ams_gg10" in proc.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--video", "/no/such/video.mp4", "--teacher", "labels:/tmp"], "video file not found"),
        (["--video", "/no/such/video.mp4"], "a real video needs --teacher"),
        (["--strategies", "ams_magic"], "unknown strategies"),
        (["--student", "resnet9000"], "unknown student"),
        (["--teacher", "nosuch.module:factory"], "cannot import module 'nosuch.module' (No module named 'nosuch'); "
                                                 "it must be importable"),
        (["--teacher", "tests.teacher_plugins:failing_factory"], "failing_factory() raised OSError"),
        (["--teacher", "tests.teacher_plugins:frames_only"], "cannot be called as label(frames, frame_indices)"),
        (["--teacher", "tests.teacher_plugins:broken", "--strategies", "ams_gg10"],
         "teacher plugin tests.teacher_plugins:broken failed on a batch of 1 frames: RuntimeError"),
        (["--student", "tiny:{tmp}/bad.pt"], "cannot read weights from"),
        (["--teacher", "labels:{tmp}/two-class", "--video", "{tmp}/clip.mp4"],
         "the embedded tiny student knows the 7 synthetic classes, but the teacher has 2"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, args, message):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    write_two_class_clip(tmp_path, 5, seconds=2.0)
    (tmp_path / "labels5").rename(tmp_path / "two-class")
    (tmp_path / "clip5.mp4").rename(tmp_path / "clip.mp4")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = _run(["compare", "--duration", "5", "--out", str(tmp_path / "o"), *args], tmp_path)
    assert proc.returncode == 2
    (line,) = _error_lines(proc)
    assert message in line


def test_corrupt_video_is_reported(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(os.urandom(5000))
    proc = _run(["compare", "--video", str(video), "--teacher", f"labels:{tmp_path}", "--out", str(tmp_path / "o")],
                tmp_path)
    assert proc.returncode == 2 and "corrupt" in proc.stderr


def test_extract_labels_feeds_the_label_directory_teacher(tmp_path, short_video):
    out = tmp_path / "labels"
    exact = short_video.path.parent / "labels"  # the synthetic video's exact labels, as a label directory
    proc = _run(["extract-labels", "--video", str(short_video.path), "--teacher", f"labels:{exact}", "--out", str(out)],
                tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["frames"] == 600 and meta["num_classes"] == 7


def _readme_plugin(folder):
    """The plugin of the README, exactly as a user would copy it."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("```python\n# fixed_camera.py", 1)[1].split("```", 1)[0]
    (folder / "fixed_camera.py").write_text("# fixed_camera.py" + code)


def test_the_readme_plugin_labels_a_real_video_at_a_bounded_size(tmp_path, short_video):
    _readme_plugin(tmp_path)
    out = tmp_path / "labels"
    proc = _run(["extract-labels", "--video", str(short_video.path), "--teacher", "fixed_camera:make",
                 "--label-size", "32x256", "--out", str(out)], tmp_path, PYTHONPATH=str(tmp_path),
                FIXED_CAMERA_VIDEO=str(short_video.path))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_classes"] == 2 and meta["label_size"] == [32, 64] and meta["video_size"] == [64, 128]
    assert meta["frames"] == 600 and meta["teacher"] == "fixed_camera:make"
    assert "600 label maps of 32x64 (2 classes)" in proc.stdout
    proc = _run(["extract-labels", "--video", str(short_video.path), "--teacher", "fixed_camera:make",
                 "--out", str(tmp_path / "again")], tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 2
    (line,) = _error_lines(proc)
    assert "teacher plugin fixed_camera:make: make() raised ValueError: set FIXED_CAMERA_VIDEO" in line


def test_pretrain_student_makes_a_student_that_compare_uses(tmp_path):
    clips = [write_two_class_clip(tmp_path, seed) for seed in (100_001, 100_002)]
    student = tmp_path / "student.pth"
    pairs = [arg for video, labels in clips for arg in ("--video", str(video), "--labels", str(labels))]
    proc = _run(["pretrain-student", *pairs, "--size", "64x128", "--iterations", "60", "--batch-size", "8",
                 "--lr", "1e-2", "--frames-per-video", "90", "--heldout", "0.25", "--out", str(student)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["classes"] == 2 and report["train_frames"] == 136 and report["heldout_frames"] == 44
    assert report["heldout_miou"] > report["heldout_miou_before"] + 10
    video, labels = clips[1]
    out = tmp_path / "compare"
    proc = _run(["compare", "--video", str(video), "--teacher", f"labels:{labels}", "--student", f"tiny:{student}",
                 "--duration", "12", "--strategies", "pretrained,ams_gg10", "--eval-every", "10",
                 "--set", "video.height=64", "--set", "video.width=128", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {r["strategy"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    # sent, not applied: whether the round's wall time lets it land before the 12 s clip ends depends on load
    assert rows["pretrained"]["miou"] > 50 and rows["ams_gg10"]["updates_sent"] >= 1
    wrong = _run(["pretrain-student", *pairs, "--classes", "3", "--out", str(student)], tmp_path)
    assert wrong.returncode == 2 and "--classes 3, but label directories say otherwise" in _error_lines(wrong)[0]


def test_compare_says_when_it_squashes_a_video(tmp_path):
    from ams_ray.data.synthetic import SyntheticVideo
    from ams_ray.data.video import write_video

    video = SyntheticVideo(12, duration_s=2.0, fps=15.0, height=96, width=128)
    write_video(tmp_path / "camera.mp4", (frame for frame, _ in video.frames()), video.fps)
    proc = _run(["compare", "--video", str(tmp_path / "camera.mp4"), "--teacher", "tests.teacher_plugins:colour",
                 "--strategies", "pretrained", "--duration", "2", "--out", str(tmp_path / "o")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("note: camera.mp4 is 96x128; the student sees it squashed to 128x256. To keep its shape, pass e.g. "
            "--set video.height=192 --set video.width=256") in proc.stderr
