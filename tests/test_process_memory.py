import numpy as np

from ams_ray.fleet.process_memory import own_memory_mb, return_free_heap


def test_reads_this_process_and_sees_a_large_allocation():
    before = own_memory_mb()
    assert 0 < before["uss_mb"] <= before["pss_mb"] <= before["rss_mb"]
    block = np.ones(64 * 1024 * 1024, np.uint8)  # 64 MiB, touched
    after = own_memory_mb()
    assert after["uss_mb"] - before["uss_mb"] > 60
    del block


def test_a_process_that_is_gone_gives_no_figures():
    import subprocess
    import sys

    import psutil

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    process = psutil.Process(child.pid)
    child.wait(timeout=60)
    assert own_memory_mb(process) == {}


def test_freed_heap_goes_back_to_the_os_after_a_trim():
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # ~256 MB in small heap blocks (below mmap size)
    keep = blocks[-1]  # pins the top of the heap so free() alone cannot shrink it
    held = own_memory_mb()["uss_mb"]
    del blocks
    assert return_free_heap()
    assert held - own_memory_mb()["uss_mb"] > 150
    del keep
