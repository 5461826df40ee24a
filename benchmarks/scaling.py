"""Sweep the number of clients and tabulate what multi_client.py measures at each.

    python benchmarks/scaling.py --clients 1 4 8 16 32 --duration 120 --speed 0.5 --results-dir runs/scaling

Each point is a separate `multi_client.py` run (a fresh Ray cluster), so points do not
share warm state. Writes scaling.json, scaling.csv and scaling.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("clients", "completed", "p95_staleness_s", "mean_miou_gain", "teacher_frames_per_s", "mean_teacher_batch",
           "trainer_busy_fraction", "memory_per_stream_gb", "peak_memory_gb", "uplink_kbps", "downlink_kbps", "speed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--speed", type=float, default=0.5)
    p.add_argument("--scheduler", default="concurrent")
    p.add_argument("--results-dir", type=Path, default=Path("runs/scaling"))
    args = p.parse_args()
    script = Path(__file__).with_name("multi_client.py")
    rows = []
    for n in args.clients:
        out = args.results_dir / f"clients{n}"
        proc = subprocess.run([sys.executable, str(script), "--clients", str(n), "--duration", str(args.duration),
                               "--speed", str(args.speed), "--scheduler", args.scheduler, "--out", str(out)])
        if not (out / "summary.json").is_file():
            print(f"clients={n}: no summary (exit {proc.returncode})", file=sys.stderr)
            continue
        summary = json.loads((out / "summary.json").read_text())
        rows.append({k: summary.get(k) for k in COLUMNS})
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "scaling.json").write_text(json.dumps(rows, indent=2))
    with open(args.results_dir / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(" | ".join(COLUMNS))
    for r in rows:
        print(" | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    xs = [r["clients"] for r in rows]
    for ax, key, label in zip(axes, ("p95_staleness_s", "mean_miou_gain", "teacher_frames_per_s", "memory_per_stream_gb"),
                              ("p95 staleness (s)", "mean mIoU gain", "teacher frames/s", "memory per stream (GB)")):
        ax.plot(xs, [r[key] for r in rows], marker="o")
        ax.set_xlabel("clients")
        ax.set_title(label)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.results_dir / "scaling.png", dpi=110)
    return 0 if len(rows) == len(args.clients) else 1


if __name__ == "__main__":
    sys.exit(main())
