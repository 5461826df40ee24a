import json
import os
import subprocess
import sys

import pytest


def _run(args, tmp_path, check=False):
    env = {**os.environ, "AMS_RAY_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "ams_ray", *args], capture_output=True, text=True, env=env,
                          check=check, timeout=600)


def test_compare_writes_results_and_plot(tmp_path):
    out = tmp_path / "out"
    proc = _run(["compare", "--video", "synthetic", "--seed", "3", "--duration", "30", "--eval-every", "15",
                 "--strategies", "pretrained,ams_gg10", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["video"] == "synthetic:3"
    assert [r["strategy"] for r in doc["rows"]] == ["pretrained", "ams_gg10"]
    for row in doc["rows"]:
        assert 0 <= row["miou"] <= 100 and row["uplink_kbps"] >= 0 and row["downlink_kbps"] >= 0
    assert doc["rows"][1]["downlink_kbps"] > 0
    assert (out / "miou_over_time.png").stat().st_size > 10_000
    assert "ams_gg10" in proc.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--video", "/no/such/video.mp4", "--teacher", "labels:/tmp"], "video file not found"),
        (["--video", "/no/such/video.mp4"], "a real video needs --teacher"),
        (["--strategies", "ams_magic"], "unknown strategies"),
        (["--student", "resnet9000"], "unknown student"),
        (["--teacher", "nosuch.module:factory"], "unknown teacher"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, args, message):
    proc = _run(["compare", "--duration", "5", "--out", str(tmp_path / "o"), *args], tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr


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
