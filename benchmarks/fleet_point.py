"""One fleet point of a sweep: a fresh `multi_client.py` process, and the summary it wrote.

A sweep (`scaling.py`, `overload.py`) runs each point in its own process so that every
point starts from a bare machine: its own Ray cluster, no warm caches or leftover actors
from the point before, and a crash that costs that point only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MULTI_CLIENT = Path(__file__).with_name("multi_client.py")


def run_fleet_point(out: Path, options: list[str], quiet: bool = False) -> dict | None:
    """Run `multi_client.py` with `options`, writing to `out`; its `summary.json`, or None
    (said on stderr, with the exit status) when it wrote none. `quiet`: its console is not
    shown (a sweep that prints its own progress)."""
    command = [sys.executable, str(MULTI_CLIENT), *options, "--metrics-flush-s", "0", "--out", str(out)]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None)
    summary = out / "summary.json"
    if not summary.is_file():
        print(f"{out.name}: no summary (multi_client.py exit {proc.returncode}); its console says why",
              file=sys.stderr)
        return None
    return json.loads(summary.read_text())
