"""This process's own memory, for per-actor accounting in multi-stream runs.

RSS counts shared libraries in full in every process, which overstates what 32 actors cost
together; PSS splits shared pages among the processes that map them (sums to the machine's
use), USS counts only pages no other process maps (what killing the process frees).
"""

from __future__ import annotations

from pathlib import Path

FIELDS = {"Rss": "rss_mb", "Pss": "pss_mb", "Private_Clean": "uss_mb", "Private_Dirty": "uss_mb"}


def own_memory_mb(smaps_rollup: Path = Path("/proc/self/smaps_rollup")) -> dict[str, float]:
    """{"rss_mb", "pss_mb", "uss_mb"} of the calling process (Linux), or {} where unavailable."""
    try:
        lines = smaps_rollup.read_text().splitlines()
    except OSError:
        return {}
    totals = {"rss_mb": 0.0, "pss_mb": 0.0, "uss_mb": 0.0}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in FIELDS:
            totals[FIELDS[key]] += float(rest.split()[0]) / 1024.0
    return {k: round(v, 1) for k, v in totals.items()}
