import numpy as np

from ams_ray.process_memory import own_memory_mb


def test_reads_this_process_and_sees_a_large_allocation():
    before = own_memory_mb()
    assert 0 < before["uss_mb"] <= before["pss_mb"] <= before["rss_mb"]
    block = np.ones(64 * 1024 * 1024, np.uint8)  # 64 MiB, touched
    after = own_memory_mb()
    assert after["uss_mb"] - before["uss_mb"] > 60
    del block


def test_a_missing_file_gives_no_figures(tmp_path):
    assert own_memory_mb(tmp_path / "absent") == {}
