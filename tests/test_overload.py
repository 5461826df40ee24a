"""The overload study's arithmetic and files, without running a fleet."""

import csv
import json

import pytest

from benchmarks.overload import goal_lines, speed_for, unloaded_gains, write


def _row(policy, load, gain, p10=1.0):
    return {"policy": policy, "load": load, "speed": speed_for(load, 1.2, 12), "mean_gain": gain, "p10_gain": p10,
            "p95_staleness_video_s": 10.0 * load, "rounds_per_stream": 8 / load, "measured_load": load * 1.1,
            "capacity_rounds_per_s": 1.1, "rounds_deferred": 3, "reverts": 1, "longest_round_wait_video_s": 30.0,
            "completed": 12, "by_scene": {"fast": {"mean_miou_gain": 1.0, "rounds_per_stream": 5.0}}}


def test_each_load_is_a_speed_that_asks_that_many_times_capacity():
    assert speed_for(2.0, capacity=1.2, streams=12) == pytest.approx(2.0)  # 12 streams x 2 / 10 s = 2.4 = 2 x 1.2
    assert speed_for(1.0, capacity=0.6, streams=6) == pytest.approx(1.0)


def test_the_goals_are_checked_against_what_was_measured(tmp_path):
    rows = [_row("fifo", 1.0, 12.0), _row("gain", 1.0, 11.8), _row("fifo", 2.0, 6.0, -3.0),
            _row("gain", 2.0, 10.0, 0.5), _row("gain", 4.0, 6.5, -0.2)]
    assert unloaded_gains(rows) == {"fifo": 12.0, "gain": 11.8}
    lines = goal_lines(rows, unloaded_gains(rows))
    assert "1x: gain +11.80 vs fifo +12.00 (goal: at most 0.5 below fifo): met" in lines
    assert "2x: gain keeps 85% of its unloaded gain (goal: 80%): met" in lines
    assert "4x: gain keeps 55% of its unloaded gain (goal: 60%): NOT met" in lines
    assert "2x: gain beats fifo by +4.00 mIoU (goal: 3): met" in lines
    assert "gain's p10 gain, worst load: -0.20 (goal: >= 0): NOT met" in lines
    result = write(tmp_path, 1.2, rows)
    written = json.loads((tmp_path / "overload.json").read_text())
    assert written["capacity_rounds_per_s"] == 1.2 and written["unloaded_gain"]["gain"] == 11.8
    assert [(r["policy"], r["load"]) for r in written["rows"]] == [(r["policy"], r["load"]) for r in rows]
    assert written["goals"] == result["goals"]
    assert len(list(csv.DictReader(open(tmp_path / "overload.csv")))) == 5
    assert (tmp_path / "overload.png").stat().st_size > 5000
