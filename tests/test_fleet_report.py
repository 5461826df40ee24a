import csv
import json

import pytest

from ams_ray.fleet.report import (
    machine_memory,
    mean_teacher_batch,
    scheduling_figures,
    stream_rows,
    summarize,
    write_report,
)


def _edge(sid, miou, base, staleness):
    return {"stream_id": sid, "frames": 100, "miou": miou, "pretrained_miou": base, "uplink_kbps": 20.0,
            "downlink_kbps": 10.0, "updates_applied": 3, "staleness_s": staleness, "max_lag_s": 0.1,
            "times_s": [0.0, 1.0, 2.0], "miou_trace": [miou] * 3, "rejected_packets": []}


def test_summary_and_files(tmp_path):
    edges = [_edge("s0", 80.0, 70.0, [1.0, 2.0]), _edge("s1", 75.0, 72.0, [3.0])]
    trainers = [{"stream_id": "s0", "train_seconds": 5.0, "teacher_batches": [2, 2, 4], "restarted": True,
                 "unlabelled_chunks": 1, "checkpoint": {"written": 4}, "rounds": 3},
                {"stream_id": "s1", "train_seconds": 3.0, "teacher_batches": [4], "restarted": False,
                 "unlabelled_chunks": 0, "checkpoint": {"written": 5}, "rounds": 1}]
    hosts = [{"streams": trainers, "restarted": True, "fused": False, "steps": 4, "rounds_per_step": 1.0,
              "memory_mb": {"pss_mb": 600.0}}]
    memory = machine_memory([{"hostname": "m", "samples": [(0.0, 4.0), (5.0, 4.5), (9.0, 6.0)]}], started_wall=2.0)
    summary = summarize(edges, trainers, {"s2": "ActorDiedError: boom"}, 3, 10.0, 1.0, memory, hosts=hosts)
    assert summary["completed"] == 2 and summary["failed"] == 1
    assert summary["mean_miou_gain"] == pytest.approx(6.5)
    assert summary["p50_staleness_s"] == pytest.approx(2.0)
    # frames of batches of 2, 2, 4 and 4: two frames of one batch of 2, two of two batches of 4
    assert summary["mean_teacher_batch"] == pytest.approx(4 / (1 / 2 + 1 / 2 + 1 / 4 + 1 / 4))
    assert summary["teacher_frames_per_s"] == pytest.approx(0.4)
    assert summary["train_seconds_per_round"] == pytest.approx(2.0)
    assert summary["trainer_mb_per_stream"] == pytest.approx(300.0) and summary["streams_per_trainer"] == 2
    assert summary["baseline_memory_gib"] == 4.5 and summary["idle_memory_gib"] == 4.0
    assert summary["trainer_busy_fraction"] == pytest.approx(0.4)
    assert summary["peak_memory_gib"] == 6.0 and summary["memory_per_stream_gib"] == pytest.approx(2.0)
    assert summary["peak_memory_gb"] == pytest.approx(6.0 * 1.073741824)
    assert (summary["trainer_restarts"], summary["unlabelled_chunks"], summary["checkpoints_written"]) == (1, 1, 9)
    assert summary["memory_per_stream_mb"] == pytest.approx(2.0 * 1024 / 3)
    rows = stream_rows(edges, trainers, {"s2": "ActorDiedError: boom"})
    write_report(tmp_path, summary, rows, edges)
    written = json.loads((tmp_path / "summary.json").read_text(), parse_constant=pytest.fail)  # no NaN
    assert written["clients"] == 3 and written["mean_miou_vs_teacher"] is None  # nothing was scored against it
    table = list(csv.DictReader(open(tmp_path / "streams.csv")))
    assert [r["stream_id"] for r in table] == ["s0", "s1", "s2"] and table[2]["failed"].startswith("ActorDied")
    assert (tmp_path / "miou_over_time.png").stat().st_size > 5000
    assert (tmp_path / "staleness.png").stat().st_size > 5000


def test_mean_teacher_batch_is_frames_over_batches():
    assert mean_teacher_batch([8] * 8 + [2] * 2) == pytest.approx(5.0)  # one batch of 8, one of 2
    assert mean_teacher_batch([]) != mean_teacher_batch([])  # NaN: nothing was labelled


def test_nodes_of_one_machine_count_once_and_machines_add_up():
    reports = [{"hostname": "a", "samples": [(0.0, 2.0), (1.0, 3.0)]},
               {"hostname": "a", "samples": [(0.0, 2.0), (1.0, 3.0)]},
               {"hostname": "b", "samples": [(0.0, 1.0), (1.0, 5.0)]}]
    memory = machine_memory(reports, started_wall=0.5)
    assert memory["machines"] == 2 and memory["peak_memory_gib"] == 8.0 and memory["baseline_memory_gib"] == 8.0


def test_truth_teacher_and_the_teachers_busy_time_are_reported_apart():
    edges = [{**_edge("s0", 80.0, 70.0, [1.0]), "miou_vs_teacher": 85.0, "teacher_miou": 90.0,
              "teacher_evaluations": 10, "teacher_seconds": 1.0},
             {**_edge("s1", 76.0, 70.0, [1.0]), "miou_vs_teacher": float("nan"), "teacher_miou": float("nan"),
              "teacher_evaluations": 0, "teacher_seconds": 0.0}]  # its teacher replies all failed
    trainers = [{"stream_id": s, "train_seconds": 1.0, "teacher_batches": [4] * 4, "teacher_seconds": 2.0,
                 "restarted": False, "unlabelled_chunks": 0, "checkpoint": {"written": 1}, "rounds": 1}
                for s in ("s0", "s1")]
    summary = summarize(edges, trainers, {}, 2, 10.0, 1.0, {}, teacher="network", teacher_replicas=2,
                        server_cpu_s={"teacher": 3.0, "trainers": 9.0})
    assert summary["teacher_cpu_share"] == pytest.approx(0.25)
    assert summary["mean_miou"] == pytest.approx(78.0) and summary["mean_miou_gain"] == pytest.approx(8.0)
    assert summary["mean_miou_vs_teacher"] == 85.0 and summary["teacher_miou"] == 90.0
    assert summary["teacher"] == "network"
    assert summary["teacher_eval_frames_per_s"] == pytest.approx(1.0)
    assert summary["teacher_busy_fraction"] == pytest.approx((2.0 + 2.0 + 1.0) / (10.0 * 2))
    rows = stream_rows(edges, trainers, {})
    assert rows[0]["miou_vs_teacher"] == 85.0


def test_overload_is_counted_where_a_reader_looks_first():
    """A stream that applied nothing, an upload that timed out, a packet resent and one never
    received, chunks shed and rates cut: each is a field of the summary."""
    edges = [{**_edge("s0", 80.0, 70.0, [1.0]), "upload_timeouts": 2, "packets_missed": 1,
              "rejected_packets": ["base version"]},
             {**_edge("s1", 70.0, 70.0, []), "updates_applied": 0, "teacher_evaluations_shed": 5}]
    trainers = [{"stream_id": "s0", "train_seconds": 1.0, "teacher_batches": [4] * 8, "restarted": False,
                 "unlabelled_chunks": 0, "checkpoint": {"written": 1}, "rounds": 5, "packets_posted": 5,
                 "packets_resent": 1, "shed_chunks": 0, "rate_cuts": 3, "max_label_backlog": 2,
                 "label_wait_s": [1.0, 30.0]},
                {"stream_id": "s1", "train_seconds": 0.0, "teacher_batches": [4] * 2, "restarted": False,
                 "unlabelled_chunks": 0, "checkpoint": {"written": 0}, "rounds": 1, "packets_posted": 1,
                 "packets_resent": 0, "shed_chunks": 4, "rate_cuts": 6, "max_label_backlog": 5, "label_wait_s": []}]
    summary = summarize(edges, trainers, {}, 2, 10.0, 1.0, {},
                        teacher_load={"capacity_fps": 1.7, "demand_fps": 4.0, "training_demand_fps": 3.0},
                        capacity_warnings=["teacher over capacity: ..."])
    assert (summary["streams_without_update"], summary["streams_without_update_ids"]) == (1, ["s1"])
    assert (summary["upload_timeouts"], summary["packets_resent"], summary["packets_missed"]) == (2, 1, 1)
    assert summary["packets_undelivered"] == 6 - 3 - 1  # s1's packet never came; s0's 5 = 3 applied + 1 refused + 1
    assert (summary["shed_chunks"], summary["rate_cuts"], summary["max_label_backlog"]) == (4, 9, 5)
    assert summary["teacher_scoring_shed"] == 5 and summary["teacher_training_frames"] == 10
    assert summary["p95_label_wait_s"] == pytest.approx(28.55)
    assert summary["teacher_capacity_frames_per_s"] == 1.7 and summary["teacher_demand_frames_per_s"] == 4.0
    assert summary["capacity_warnings"] == ["teacher over capacity: ..."]


def test_where_training_went_is_reported_with_capacity_the_worst_streams_and_by_scene_kind():
    edges = [{**_edge(f"s{i}", miou, 60.0, [1.0]), "video": f"synthetic:{i}:60:128x256" + suffix}
             for i, (miou, suffix) in enumerate([(70.0, ":fast"), (62.0, ":static"), (58.0, ":static"), (66.0, "")])]
    trainers = [{"stream_id": "s0", "host": "h0", "rounds": 6, "train_seconds": 6.0,
                 "deferred_rounds": {"stepped_aside": 1}, "longest_round_wait_video_s": 20.0},
                {"stream_id": "s1", "host": "h0", "rounds": 2, "train_seconds": 2.0,
                 "deferred_rounds": {"hibernating": 3, "stepped_aside": 2}, "longest_round_wait_video_s": 40.0},
                {"stream_id": "s2", "host": "h1", "rounds": 2, "train_seconds": 4.0, "deferred_rounds": {},
                 "longest_round_wait_video_s": 10.0, "reverts": 2},
                {"stream_id": "s3", "host": "h1", "rounds": 2, "train_seconds": 4.0}]
    figures = scheduling_figures(edges, trainers, {}, speed=2.0, period_s=10.0, calibrated_rounds_per_s=1.8)
    assert figures["capacity_rounds_per_s"] == pytest.approx(1.0 + 0.5), "host h0: 8 rounds in 8 s, h1: 4 in 8 s"
    assert figures["demand_rounds_per_s"] == pytest.approx(0.8) and figures["load"] == pytest.approx(0.8 / 1.5)
    assert figures["rounds_deferred"] == {"stepped_aside": 3, "hibernating": 3}
    assert figures["longest_round_wait_video_s"] == 40.0 and figures["rounds_per_stream"] == 3.0
    assert figures["reverts"] == 2
    assert figures["p10_miou_gain"] < 0 < figures["mean_miou_gain"], "one stream fell below its pretrained model"
    assert figures["by_scene"]["static"] == {"streams": 2, "mean_miou_gain": 0.0, "p10_miou_gain": pytest.approx(-1.6),
                                             "rounds_per_stream": 2.0}
    assert set(figures["by_scene"]) == {"fast", "static", "mixed"}
    rows = stream_rows(edges, trainers, {})
    assert [r["scenes"] for r in rows] == ["fast", "static", "static", "mixed"]
    assert rows[1]["rounds_deferred"] == 5 and rows[3]["rounds_deferred"] == 0


def test_pooled_devices_are_charged_their_share_of_their_process_apart_from_the_server():
    edges = [{**_edge(f"s{i}", 70.0, 60.0, [1.0]), "memory_mb": {"pss_mb": 200.0}, "devices_in_process": 4,
              "edge_cpu_s": 3.0} for i in range(4)]
    trainers = [{"stream_id": f"s{i}", "train_seconds": 1.0, "teacher_batches": [1], "restarted": False,
                 "unlabelled_chunks": 0, "checkpoint": {"written": 1}, "rounds": 1} for i in range(4)]
    summary = summarize(edges, trainers, {}, 4, 120.0, 1.0, machine_memory([], 0.0),
                        server_cpu_s={"teacher": 10.0, "trainers": 30.0})
    assert summary["edge_pss_mb"] == 200.0 and summary["edge_mb_per_device"] == 50.0
    assert summary["devices_per_edge_host"] == 4
    assert summary["server_cpu_s_per_stream_minute"] == pytest.approx(40.0 / 8)  # 4 streams x 2 minutes
    assert summary["edge_cpu_s_per_stream_minute"] == pytest.approx(12.0 / 8)
