import csv
import json

import pytest

from ams_ray.fleet_report import stream_rows, summarize, write_report


def _edge(sid, miou, base, staleness):
    return {"stream_id": sid, "frames": 100, "miou": miou, "pretrained_miou": base, "uplink_kbps": 20.0,
            "downlink_kbps": 10.0, "updates_applied": 3, "staleness_s": staleness, "max_lag_s": 0.1,
            "times_s": [0.0, 1.0, 2.0], "miou_trace": [miou] * 3}


def test_summary_and_files(tmp_path):
    edges = [_edge("s0", 80.0, 70.0, [1.0, 2.0]), _edge("s1", 75.0, 72.0, [3.0])]
    trainers = [{"stream_id": "s0", "train_seconds": 5.0, "teacher_batches": [2, 2, 4], "restarted": True,
                 "unlabelled_chunks": 1, "checkpoint": {"written": 4}},
                {"stream_id": "s1", "train_seconds": 3.0, "teacher_batches": [4], "restarted": False,
                 "unlabelled_chunks": 0, "checkpoint": {"written": 5}}]
    summary = summarize(edges, trainers, {"s2": "ActorDiedError: boom"}, 3, 10.0, 1.0, [4.0, 6.0, 5.0])
    assert summary["completed"] == 2 and summary["failed"] == 1
    assert summary["mean_miou_gain"] == pytest.approx(6.5)
    assert summary["p50_staleness_s"] == pytest.approx(2.0)
    assert summary["mean_teacher_batch"] == pytest.approx(3.0)
    assert summary["teacher_frames_per_s"] == pytest.approx(0.4)
    assert summary["trainer_busy_fraction"] == pytest.approx(0.4)
    assert summary["peak_memory_gib"] == 6.0 and summary["memory_per_stream_gib"] == pytest.approx(2.0)
    assert summary["peak_memory_gb"] == pytest.approx(6.0 * 1.073741824)
    assert (summary["trainer_restarts"], summary["unlabelled_chunks"], summary["checkpoints_written"]) == (1, 1, 9)
    rows = stream_rows(edges, trainers, {"s2": "ActorDiedError: boom"})
    write_report(tmp_path, summary, rows, edges)
    assert json.loads((tmp_path / "summary.json").read_text())["clients"] == 3
    table = list(csv.DictReader(open(tmp_path / "streams.csv")))
    assert [r["stream_id"] for r in table] == ["s0", "s1", "s2"] and table[2]["failed"].startswith("ActorDied")
    assert (tmp_path / "miou_over_time.png").stat().st_size > 5000
    assert (tmp_path / "staleness.png").stat().st_size > 5000
