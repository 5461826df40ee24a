import json

from benchmarks.state_cost import main


def test_the_log_writes_about_what_the_wire_carries_where_the_old_format_wrote_the_window_per_packet(tmp_path):
    """Six simulated minutes of one stream (past one 250 s window, so compaction runs), both
    formats fed from the same events: the log writes at most twice the wire's bytes, the old
    format over fifty times, and a restore from either holds the same window."""
    assert main(["--out", str(tmp_path), "--hours", "0.1", "--teacher", "oracle", "--profiles", "cpu",
                 "--rates", "1"]) == 0
    rows = {r["format"]: r for r in json.loads((tmp_path / "state_cost.json").read_text())["rows"]}
    assert set(rows) == {"old", "new"} and rows["new"]["packets"] >= 30
    assert rows["new"]["wire_bytes_per_hour"] == rows["old"]["wire_bytes_per_hour"] > 0
    assert rows["new"]["ratio"] <= 2.0 < 50.0 < rows["old"]["ratio"]
    assert rows["new"]["beyond_window_and_model_kb"] < 64 < rows["old"]["beyond_window_and_model_kb"]
    assert rows["new"]["store_footprint_bytes"] < rows["old"]["store_footprint_bytes"]
    assert rows["new"]["restored_window_frames"] == rows["old"]["restored_window_frames"] == rows["new"]["window_frames"]
    assert rows["new"]["window_frames"] > 200
    assert (tmp_path / "state_cost.png").stat().st_size > 0
